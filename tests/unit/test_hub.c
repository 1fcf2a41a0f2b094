/* test_hub.c - model names without a network: repo id rules, local folders,
 * and a hand-made Hugging Face cache read offline (the downloads themselves
 * are tested against a local server in tests/test_hub.py). */
#include "check.h"
#include "logitscope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMMIT "0123456789abcdef0123456789abcdef01234567"

static void test_repo_ids(void) {
    const char *good[] = {"gpt2", "openai-community/gpt2", "distilgpt2", "user/some-finetune",
                          "a", "_x", "A.b_c-d/e1", NULL};
    const char *bad[] = {"", "a b", "a/b/c", "/gpt2", "gpt2/", "-x", "x-", ".x", "x.", "a--b",
                         "a..b", "x.git", "org/na$me", "caf\xc3\xa9", NULL};
    for (int i = 0; good[i]; i++) CHECK(lsc_hub_check_repo_id(good[i], NULL) == LSC_OK);
    for (int i = 0; bad[i]; i++) CHECK(lsc_hub_check_repo_id(bad[i], NULL) == LSC_ERR_INVALID_ARG);
    char longid[100];
    memset(longid, 'a', 97);
    longid[97] = '\0';
    CHECK(lsc_hub_check_repo_id(longid, NULL) == LSC_ERR_INVALID_ARG);
    longid[96] = '\0';
    CHECK(lsc_hub_check_repo_id(longid, NULL) == LSC_OK);
}

/* Writes `text` to `path`. */
static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static char root[64];

/* A cache with models--org--m: refs/main -> COMMIT and a snapshot whose
 * config.json and model.safetensors link into blobs/. */
static void make_cache(void) {
    char p[512];
    snprintf(root, sizeof root, "/tmp/lsc-unit-hub-XXXXXX");
    CHECK(mkdtemp(root) != NULL);
    const char *dirs[] = {"models--org--m", "models--org--m/blobs", "models--org--m/refs",
                          "models--org--m/snapshots", "models--org--m/snapshots/" COMMIT};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
        CHECK(mkdir(p, 0755) == 0);
    }
    snprintf(p, sizeof p, "%s/models--org--m/refs/main", root);
    put(p, COMMIT);
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/models--org--m/blobs/etag%d", root, i);
        put(p, "x");
        char target[32];
        snprintf(target, sizeof target, "../../blobs/etag%d", i);
        snprintf(p, sizeof p, "%s/models--org--m/snapshots/" COMMIT "/%s", root, files[i]);
        CHECK(symlink(target, p) == 0);
    }
}

static void test_offline_cache(void) {
    make_cache();
    lsc_hub_params hp = lsc_hub_default_params();
    hp.cache_dir = root;
    hp.offline = 1;
    hp.endpoint = "http://127.0.0.1:9"; /* never contacted */
    char *dir = NULL;
    lsc_error err;
    char want[512];
    snprintf(want, sizeof want, "%s/models--org--m/snapshots/" COMMIT, root);
    CHECK(lsc_hub_resolve("org/m", hp, &dir, &err) == LSC_OK);
    CHECK(dir && !strcmp(dir, want));
    lsc_free(dir);
    /* by commit, without a ref */
    hp.revision = COMMIT;
    CHECK(lsc_hub_resolve("org/m", hp, &dir, &err) == LSC_OK);
    lsc_free(dir);
    /* an unknown revision, an uncached repo: not found, saying what to run */
    hp.revision = "v2";
    CHECK(lsc_hub_resolve("org/m", hp, &dir, &err) == LSC_ERR_NOT_FOUND && !dir);
    CHECK(strstr(err.message, "logitscope download org/m --revision v2") != NULL);
    hp.revision = NULL;
    CHECK(lsc_hub_resolve("org/other", hp, &dir, &err) == LSC_ERR_NOT_FOUND);
    /* a dangling link: not found, saying it is dangling */
    char p[512];
    snprintf(p, sizeof p, "%s/models--org--m/blobs/etag1", root);
    CHECK(unlink(p) == 0);
    CHECK(lsc_hub_resolve("org/m", hp, &dir, &err) == LSC_ERR_NOT_FOUND);
    CHECK(strstr(err.message, "dangling") != NULL);
    /* bad names never reach the cache */
    CHECK(lsc_hub_resolve("org/m/x", hp, &dir, &err) == LSC_ERR_INVALID_ARG);
    CHECK(lsc_hub_resolve("./no-such-folder", hp, &dir, &err) == LSC_ERR_NOT_FOUND);
    hp.revision = "../../x";
    CHECK(lsc_hub_resolve("org/m", hp, &dir, &err) == LSC_ERR_INVALID_ARG);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK(system(cmd) == 0);
}

static void test_local_folder(void) {
    char d[64] = "/tmp/lsc-unit-dir-XXXXXX", p[128];
    CHECK(mkdtemp(d) != NULL);
    lsc_hub_params hp = lsc_hub_default_params();
    hp.offline = 1;
    char *dir = NULL;
    lsc_error err;
    CHECK(lsc_hub_resolve(d, hp, &dir, &err) == LSC_OK && dir && !strcmp(dir, d));
    lsc_free(dir);
    hp.revision = "main"; /* a folder has no revisions */
    CHECK(lsc_hub_resolve(d, hp, &dir, &err) == LSC_ERR_INVALID_ARG);
    hp.revision = NULL;
    snprintf(p, sizeof p, "%s/pytorch_model.bin", d);
    put(p, "x");
    CHECK(lsc_hub_resolve(d, hp, &dir, &err) == LSC_ERR_UNSUPPORTED);
    CHECK(strstr(err.message, "save_pretrained") != NULL);
    CHECK(lsc_hub_resolve(p, hp, &dir, &err) == LSC_ERR_INVALID_ARG); /* a file */
    unlink(p);
    rmdir(d);
}

int main(void) {
    RUN(test_repo_ids);
    RUN(test_offline_cache);
    RUN(test_local_folder);
    return CHECK_DONE();
}
