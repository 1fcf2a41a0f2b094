/* hub.c - model names: local folders, the Hugging Face hub cache, downloads.
 *
 * The cache layout, URLs, headers and rules follow huggingface_hub 2.4.0
 * (file_download.py, constants.py, utils/_validators.py):
 *   - HEAD {endpoint}/{repo}/resolve/{revision}/{file} (revision %-encoded),
 *     following redirects that stay on a Hub origin; a redirect elsewhere (the
 *     CDN) carries the metadata itself and is where the GET goes, without the
 *     Authorization header.
 *   - commit = X-Repo-Commit; etag = X-Linked-Etag or ETag, without W/ and
 *     quotes; size = X-Linked-Size, or Content-Length of a non-redirect.
 *   - X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound / GatedRepo.
 * The download is done in three phases so that a failure leaves nothing that
 * looks complete: (1) HEAD every file (errors before anything is written),
 * (2) fetch missing blobs through blobs/{etag}.incomplete, verified, then
 * renamed, (3) snapshot links, .no_exist markers, refs/{revision}.
 */
#include "internal.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HUB_DEFAULT_ENDPOINT "https://huggingface.co"
#define HUB_MAX_REDIRECTS 10
#define HUB_MAX_ATTEMPTS 5

/* The files a GPT-2 checkpoint needs; the first N_REQUIRED must exist. */
static const char *const hub_files[] = {"config.json", "model.safetensors",
                                        "generation_config.json", "vocab.json",
                                        "merges.txt", "tokenizer.json"};
enum { N_HUB_FILES = sizeof hub_files / sizeof hub_files[0], N_REQUIRED = 2 };

/* Settings of one resolve/download call, with the environment applied. */
typedef struct hub {
    char *endpoint;  /* without trailing '/' */
    char *token;     /* NULL: none */
    char *cache_dir; /* the hub cache root */
    const char *repo;
    const char *revision;
    bool offline;
    char *storage; /* {cache_dir}/models--{org}--{name} */
    lsc_hub_progress_fn progress;
    void *user_data;
    CURL *curl;
    char curl_err[CURL_ERROR_SIZE];
} hub;

/* What one HTTP response said about a file (headers of the last response). */
typedef struct http_meta {
    long status;
    char etag[160];        /* normalised: no W/, no quotes */
    char linked_etag[160]; /* X-Linked-Etag, normalised */
    char commit[64];       /* X-Repo-Commit */
    char error_code[64];   /* X-Error-Code */
    char content_range[96];
    long long linked_size;    /* X-Linked-Size, -1 if absent */
    long long content_length; /* -1 if absent */
} http_meta;

/* The metadata of one file of the snapshot being downloaded. */
typedef struct hub_file {
    const char *name;
    bool present;  /* already in the snapshot: nothing to do */
    bool absent;   /* 404 on the Hub: write .no_exist */
    char etag[160];
    long long size; /* -1 unknown */
    char *url;      /* where to GET it */
    bool auth;      /* send the token with the GET */
} hub_file;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

/* A printf into a new string (free with free()); NULL when out of memory. */
static char *str_printf(const char *fmt, ...) LSC_PRINTF(1, 2);
static char *str_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* True when `s` is exactly `n` lowercase hex digits. */
static bool is_hex(const char *s, size_t n) {
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return i == n;
}

/* huggingface_hub's constants._is_true. */
static bool env_true(const char *name) {
    const char *v = getenv(name);
    if (!v) return false;
    return !strcasecmp(v, "1") || !strcasecmp(v, "ON") || !strcasecmp(v, "YES") ||
           !strcasecmp(v, "TRUE");
}

/* A copy of `path` with a leading "~/" replaced by $HOME (free with free()). */
static char *expand_user(const char *path) {
    const char *home = getenv("HOME");
    if (path[0] == '~' && (path[1] == '/' || path[1] == '\0') && home && *home)
        return str_printf("%s%s", home, path + 1);
    return strdup(path);
}

/* The hub cache folder as huggingface_hub computes it (free with free()). */
static char *default_cache_dir(void) {
    const char *v = getenv("HF_HUB_CACHE");
    if (!v || !*v) v = getenv("HUGGINGFACE_HUB_CACHE");
    if (v && *v) return expand_user(v);
    const char *home = getenv("HF_HOME");
    if (home && *home) {
        char *h = expand_user(home);
        char *p = h ? lsc_path_join(h, "hub") : NULL;
        free(h);
        return p;
    }
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (xdg && *xdg) {
        char *x = expand_user(xdg);
        char *p = x ? lsc_path_join(x, "huggingface/hub") : NULL;
        free(x);
        return p;
    }
    return expand_user("~/.cache/huggingface/hub");
}

/* Creates every missing folder of `path` (as mkdir -p). */
static lsc_status make_dirs(const char *path, lsc_error *err) {
    char *p = strdup(path);
    if (!p) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                int e = errno;
                lsc_status st = lsc_fail(err, LSC_ERR_IO,
                                         "cannot create the cache folder %s: %s (set HF_HUB_CACHE "
                                         "to a writable folder)",
                                         p, strerror(e));
                free(p);
                return st;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    return LSC_OK;
}

/* True when `path` names an existing file (links followed). */
static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* True when `path` is a symbolic link whose target does not exist. */
static bool is_dangling_link(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && stat(path, &st) != 0;
}

/* Writes `data` to `path` through a temporary file and a rename, so readers
 * see the old content or the new one, never a part. */
static lsc_status write_atomic(const char *path, const char *data, lsc_error *err) {
    char *tmp = str_printf("%s.%ld.tmp", path, (long)getpid());
    if (!tmp) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fputs(data, f) >= 0;
    if (f && fclose(f) != 0) ok = false;
    if (ok && rename(tmp, path) != 0) ok = false;
    lsc_status st = LSC_OK;
    if (!ok) {
        st = lsc_fail(err, LSC_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Validation                                                                */
/* ------------------------------------------------------------------------ */

/* One part of a repo id: [A-Za-z0-9_.-]{1,96}, starting and ending with a
 * letter, digit or '_' (the regex's word boundaries). */
static bool repo_part_ok(const char *s, size_t n) {
    if (n < 1 || n > 96) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '_' || c == '-' || c == '.')) return false;
    }
    return s[0] != '-' && s[0] != '.' && s[n - 1] != '-' && s[n - 1] != '.';
}

lsc_status lsc_hub_check_repo_id(const char *id, lsc_error *err) {
    if (!id || !*id) return lsc_fail(err, LSC_ERR_INVALID_ARG, "the repo id is empty");
    const char *slash = strchr(id, '/');
    if (slash && strchr(slash + 1, '/'))
        return lsc_fail(err, LSC_ERR_INVALID_ARG,
                        "'%s' is not a folder, nor a repo id ('name' or 'namespace/name')", id);
    bool ok = slash ? repo_part_ok(id, (size_t)(slash - id)) &&
                          repo_part_ok(slash + 1, strlen(slash + 1))
                    : repo_part_ok(id, strlen(id));
    if (!ok)
        return lsc_fail(err, LSC_ERR_INVALID_ARG,
                        "'%s' is not a folder, nor a valid repo id (letters, digits, '-', '_', "
                        "'.'; not starting or ending with '-' or '.'; at most 96 per part)",
                        id);
    if (strstr(id, "--") || strstr(id, ".."))
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "repo id '%s' contains '--' or '..'", id);
    size_t n = strlen(id);
    if (n >= 4 && !strcmp(id + n - 4, ".git"))
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "repo id '%s' ends with '.git'", id);
    return LSC_OK;
}

/* A revision (branch, tag, commit, "refs/pr/1") becomes a path under refs/,
 * so it must be a safe relative path with git's allowed characters. */
static lsc_status check_revision(const char *rev, lsc_error *err) {
    size_t n = strlen(rev);
    bool ok = n >= 1 && n <= 255 && !strstr(rev, "..") && !strstr(rev, "@{");
    for (size_t i = 0; i < n && ok; i++) {
        unsigned char c = (unsigned char)rev[i];
        ok = c > ' ' && c != 0x7f && !strchr("~^:?*[\\", c);
    }
    /* every '/'-separated part non-empty and not starting with '.' */
    for (const char *p = rev; ok;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        ok = len > 0 && p[0] != '.';
        if (!e) break;
        p = e + 1;
    }
    if (!ok)
        return lsc_fail(err, LSC_ERR_INVALID_ARG,
                        "revision '%s' is not a valid branch, tag or commit (1 to 255 "
                        "characters, no spaces, '..', '@{' or any of ~^:?*[\\, no empty part "
                        "or part starting with '.')",
                        rev);
    return LSC_OK;
}

/* An ETag becomes a file name in blobs/: only [A-Za-z0-9_-]. */
static bool etag_ok(const char *etag) {
    if (!*etag || strlen(etag) > 128) return false;
    for (const char *p = etag; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_')) return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Cache lookups                                                             */
/* ------------------------------------------------------------------------ */

/* The commit a revision points to in the cache: the revision itself when it
 * is a full commit hash, else the content of refs/{revision}. Writes 41 bytes
 * into `commit`; false when unknown. */
static bool cached_commit(const hub *h, char commit[41]) {
    if (is_hex(h->revision, 40)) {
        memcpy(commit, h->revision, 41);
        return true;
    }
    char *ref = str_printf("%s/refs/%s", h->storage, h->revision);
    if (!ref) return false;
    char buf[128] = {0};
    FILE *f = fopen(ref, "rb");
    free(ref);
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    while (n > 0 && isspace((unsigned char)buf[n - 1])) buf[--n] = '\0';
    if (!is_hex(buf, 40)) return false;
    memcpy(commit, buf, 41);
    return true;
}

/* {storage}/{kind}/{commit}/{file} as a new string (free with free()). */
static char *cache_path(const hub *h, const char *kind, const char *commit, const char *file) {
    return file ? str_printf("%s/%s/%s/%s", h->storage, kind, commit, file)
                : str_printf("%s/%s/%s", h->storage, kind, commit);
}

typedef enum { CACHE_NONE, CACHE_USABLE, CACHE_COMPLETE } cache_state;

/* How much of the snapshot `commit` the cache holds: COMPLETE when every file
 * is there or known absent (.no_exist), USABLE when the required files are
 * there, else NONE. `dangling` gets the first required file whose snapshot
 * link points at a missing blob (a static name, or NULL). */
static cache_state snapshot_state(const hub *h, const char *commit, const char **dangling) {
    cache_state s = CACHE_COMPLETE;
    *dangling = NULL;
    for (int i = 0; i < N_HUB_FILES; i++) {
        char *p = cache_path(h, "snapshots", commit, hub_files[i]);
        char *q = cache_path(h, ".no_exist", commit, hub_files[i]);
        if (!p || !q) {
            free(p);
            free(q);
            return CACHE_NONE;
        }
        bool have = file_exists(p);
        if (!have && i < N_REQUIRED) {
            if (!*dangling && is_dangling_link(p)) *dangling = hub_files[i];
            s = CACHE_NONE;
        } else if (!have && s == CACHE_COMPLETE && !file_exists(q)) {
            s = CACHE_USABLE;
        }
        free(p);
        free(q);
    }
    return s;
}

/* ------------------------------------------------------------------------ */
/* HTTP                                                                      */
/* ------------------------------------------------------------------------ */

/* Copies a header value, trimmed, into `dst` (W/ and quotes removed when
 * `etag`). */
static void copy_header(char *dst, size_t cap, const char *v, size_t n, bool etag) {
    while (n > 0 && isspace((unsigned char)*v)) v++, n--;
    while (n > 0 && isspace((unsigned char)v[n - 1])) n--;
    if (etag) { /* huggingface_hub: etag.lstrip("W/").strip('"') */
        while (n > 0 && (*v == 'W' || *v == '/')) v++, n--;
        while (n > 0 && *v == '"') v++, n--;
        while (n > 0 && v[n - 1] == '"') n--;
    }
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

/* libcurl header callback: records the headers of the latest response. */
static size_t on_header(char *buf, size_t size, size_t nitems, void *user) {
    http_meta *m = user;
    size_t n = size * nitems;
    if (n >= 5 && !strncmp(buf, "HTTP/", 5)) { /* a new response starts */
        memset(m, 0, sizeof *m);
        m->linked_size = m->content_length = -1;
        return n;
    }
    const char *colon = memchr(buf, ':', n);
    if (!colon) return n;
    size_t kn = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vn = n - kn - 1;
    char tmp[32];
#define IS(name) (kn == strlen(name) && !strncasecmp(buf, name, kn))
    if (IS("ETag")) copy_header(m->etag, sizeof m->etag, v, vn, true);
    else if (IS("X-Linked-Etag")) copy_header(m->linked_etag, sizeof m->linked_etag, v, vn, true);
    else if (IS("X-Repo-Commit")) copy_header(m->commit, sizeof m->commit, v, vn, false);
    else if (IS("X-Error-Code")) copy_header(m->error_code, sizeof m->error_code, v, vn, false);
    else if (IS("Content-Range"))
        copy_header(m->content_range, sizeof m->content_range, v, vn, false);
    else if (IS("X-Linked-Size") || IS("Content-Length")) {
        copy_header(tmp, sizeof tmp, v, vn, false);
        char *end;
        errno = 0;
        long long x = strtoll(tmp, &end, 10);
        if (!errno && *tmp && !*end && x >= 0) {
            if (IS("X-Linked-Size")) m->linked_size = x;
            else m->content_length = x;
        }
    }
#undef IS
    return n;
}

/* Compares the scheme, host and port of two URLs. */
static bool same_origin(const char *a, const char *b) {
    CURLU *ua = curl_url(), *ub = curl_url();
    bool same = false;
    if (ua && ub && !curl_url_set(ua, CURLUPART_URL, a, 0) &&
        !curl_url_set(ub, CURLUPART_URL, b, 0)) {
        same = true;
        CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
        for (int i = 0; i < 3 && same; i++) {
            char *x = NULL, *y = NULL;
            curl_url_get(ua, parts[i], &x, CURLU_DEFAULT_PORT);
            curl_url_get(ub, parts[i], &y, CURLU_DEFAULT_PORT);
            same = x && y && !strcasecmp(x, y);
            curl_free(x);
            curl_free(y);
        }
    }
    curl_url_cleanup(ua);
    curl_url_cleanup(ub);
    return same;
}

/* A Hub origin (the endpoint, huggingface.co, hf.co) gets the token. */
static bool is_hub_origin(const hub *h, const char *url) {
    return same_origin(url, h->endpoint) || same_origin(url, HUB_DEFAULT_ENDPOINT) ||
           same_origin(url, "https://hf.co");
}

/* Sets the options every request shares; returns the header list to free
 * with curl_slist_free_all after the transfer (NULL is fine). */
static struct curl_slist *setup_request(hub *h, const char *url, bool auth) {
    CURL *c = h->curl;
    curl_easy_reset(c);
    h->curl_err[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->curl_err);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "logitscope/" LSC_VERSION);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L); /* stalled 60 s: give up */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    struct curl_slist *hdr = curl_slist_append(NULL, "Accept-Encoding: identity");
    if (auth && h->token && hdr) {
        char *a = str_printf("Authorization: Bearer %s", h->token);
        if (a) {
            struct curl_slist *n = curl_slist_append(hdr, a);
            if (n) hdr = n;
            free(a);
        }
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    return hdr;
}

/* HEADs `url`, following redirects that stay on a Hub origin. On return `m`
 * holds the last response's headers and *where (new string, free with free())
 * the URL to GET: the last URL, or the off-Hub redirect target. LSC_OK means
 * a response arrived (check m->status); else a network error. */
static lsc_status http_head(hub *h, const char *url, http_meta *m, char **where,
                            lsc_error *err) {
    *where = NULL;
    char *cur = strdup(url);
    if (!cur) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
    for (int hop = 0; hop <= HUB_MAX_REDIRECTS; hop++) {
        struct curl_slist *hdr = setup_request(h, cur, is_hub_origin(h, cur));
        curl_easy_setopt(h->curl, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(h->curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h->curl, CURLOPT_HEADERDATA, m);
        memset(m, 0, sizeof *m);
        m->linked_size = m->content_length = -1;
        CURLcode rc = curl_easy_perform(h->curl);
        curl_slist_free_all(hdr);
        if (rc != CURLE_OK) {
            lsc_status st = lsc_fail(err, LSC_ERR_NETWORK, "cannot reach %s: %s", cur,
                                     h->curl_err[0] ? h->curl_err : curl_easy_strerror(rc));
            free(cur);
            return st;
        }
        curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &m->status);
        char *next = NULL;
        if (m->status >= 300 && m->status < 400)
            curl_easy_getinfo(h->curl, CURLINFO_REDIRECT_URL, &next);
        if (!next) break;
        char *target = strdup(next);
        if (!target) {
            free(cur);
            return lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
        }
        if (!is_hub_origin(h, target)) { /* CDN: this response carries the metadata */
            free(cur);
            *where = target;
            return LSC_OK;
        }
        free(cur);
        cur = target;
        if (hop == HUB_MAX_REDIRECTS) {
            lsc_status st = lsc_fail(err, LSC_ERR_NETWORK, "%s: more than %d redirects", url,
                                     HUB_MAX_REDIRECTS);
            free(cur);
            return st;
        }
    }
    *where = cur;
    return LSC_OK;
}

/* Turns an HTTP error of a HEAD for `file` into a status and message. */
static lsc_status head_error(const hub *h, const char *file, const http_meta *m,
                             lsc_error *err) {
    const char *code = m->error_code;
    if (m->status == 401 || m->status == 403 || !strcmp(code, "GatedRepo"))
        return lsc_fail(err, LSC_ERR_AUTH,
                        "%s: the Hub refused access (HTTP %ld%s%s): the repo does not exist, or "
                        "is private or gated and %s",
                        h->repo, m->status, *code ? " " : "", code,
                        h->token ? "the token in HF_TOKEN cannot read it"
                                 : "HF_TOKEN is not set to a token that can read it");
    if (!strcmp(code, "RepoNotFound"))
        return lsc_fail(err, LSC_ERR_NOT_FOUND, "%s: no such repo on %s", h->repo, h->endpoint);
    if (!strcmp(code, "RevisionNotFound"))
        return lsc_fail(err, LSC_ERR_NOT_FOUND, "%s: revision '%s' does not exist", h->repo,
                        h->revision);
    if (m->status == 404)
        return lsc_fail(err, LSC_ERR_NOT_FOUND, "%s (revision %s) has no %s", h->repo,
                        h->revision, file);
    return lsc_fail(err, LSC_ERR_NETWORK, "%s: %s: the Hub answered HTTP %ld", h->repo, file,
                    m->status);
}

/* The resolve URL of `file` at `revision` (new string, free with free()). */
static char *resolve_url(hub *h, const char *revision, const char *file) {
    char *rev = curl_easy_escape(h->curl, revision, 0); /* quote(revision, safe="") */
    char *url = rev ? str_printf("%s/%s/resolve/%s/%s", h->endpoint, h->repo, rev, file) : NULL;
    curl_free(rev);
    return url;
}

/* HEADs `file` at `revision` and fills `f` (url, etag, size) and `commit`
 * (41 bytes). A 404 for the file itself sets f->absent and returns LSC_OK. */
static lsc_status head_file(hub *h, const char *revision, hub_file *f, char commit[41],
                            lsc_error *err) {
    char *url = resolve_url(h, revision, f->name);
    if (!url) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
    http_meta m;
    char *where = NULL;
    lsc_status st = http_head(h, url, &m, &where, err);
    bool redirected = where && strcmp(where, url) != 0 && !is_hub_origin(h, where);
    free(url);
    if (st) return st;
    if (m.status == 404 && (!strcmp(m.error_code, "EntryNotFound") || !*m.error_code)) {
        f->absent = true;
        free(where);
        if (is_hex(m.commit, 40)) memcpy(commit, m.commit, 41);
        return LSC_OK;
    }
    if (m.status >= 400 || m.status < 200) {
        free(where);
        return head_error(h, f->name, &m, err);
    }
    if (!is_hex(m.commit, 40)) {
        free(where);
        return lsc_fail(err, LSC_ERR_NETWORK,
                        "%s: the answer for %s has no valid X-Repo-Commit header: is %s a "
                        "Hugging Face Hub endpoint (HF_ENDPOINT)?",
                        h->repo, f->name, h->endpoint);
    }
    memcpy(commit, m.commit, 41);
    const char *etag = *m.linked_etag ? m.linked_etag : m.etag;
    if (!etag_ok(etag)) {
        free(where);
        return lsc_fail(err, LSC_ERR_NETWORK, "%s: %s: the Hub sent no usable ETag ('%s')",
                        h->repo, f->name, etag);
    }
    snprintf(f->etag, sizeof f->etag, "%s", etag);
    f->size = m.linked_size >= 0 ? m.linked_size : redirected ? -1 : m.content_length;
    f->url = where;
    f->auth = is_hub_origin(h, where);
    return LSC_OK;
}

/* ------------------------------------------------------------------------ */
/* Fetching a blob                                                           */
/* ------------------------------------------------------------------------ */

/* State of one GET into the .incomplete file. */
typedef struct transfer {
    hub *h;
    const hub_file *f;
    int fd;
    long long offset;   /* bytes on disk when this attempt started */
    long long written;  /* bytes this attempt wrote */
    bool started;       /* the response status was checked */
    int write_errno;    /* a local write failed */
    bool cancelled;
    http_meta meta;
} transfer;

/* libcurl write callback: appends to the .incomplete file; on the first
 * bytes of a 200 answer to a Range request, starts over from zero. */
static size_t on_body(char *buf, size_t size, size_t nmemb, void *user) {
    transfer *t = user;
    size_t n = size * nmemb;
    if (!t->started) {
        t->started = true;
        long status = 0;
        curl_easy_getinfo(t->h->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200 && t->offset > 0) { /* server ignored Range */
            if (ftruncate(t->fd, 0) != 0 || lseek(t->fd, 0, SEEK_SET) != 0) {
                t->write_errno = errno;
                return 0;
            }
            t->offset = 0;
        } else if (status == 206) {
            long long from = -1;
            if (sscanf(t->meta.content_range, "bytes %lld-", &from) != 1 || from != t->offset) {
                t->write_errno = EPROTO;
                return 0;
            }
        }
    }
    for (size_t done = 0; done < n;) {
        ssize_t w = write(t->fd, buf + done, n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            t->write_errno = errno;
            return 0;
        }
        done += (size_t)w;
    }
    t->written += (long long)n;
    return n;
}

/* Reports progress to the caller's callback (libcurl xferinfo callback). */
static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    transfer *t = user;
    if (!t->h->progress) return 0;
    long long total = t->f->size >= 0 ? t->f->size : dltotal > 0 ? t->offset + dltotal : 0;
    if (t->h->progress(t->f->name, (uint64_t)(t->offset + t->written), (uint64_t)total,
                       t->h->user_data)) {
        t->cancelled = true;
        return 1;
    }
    return 0;
}

/* Curl errors after which a resumed request may succeed. */
static bool transient(CURLcode rc) {
    return rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
           rc == CURLE_GOT_NOTHING || rc == CURLE_OPERATION_TIMEDOUT ||
           rc == CURLE_COULDNT_CONNECT || rc == CURLE_HTTP2_STREAM;
}

/* Checks the file at `fd` against the ETag: sha256 when the ETag is 64 hex
 * digits (LFS), git's blob sha1 ("blob {size}\0" + content) when it is 40.
 * Other ETags are accepted unchecked (the size was checked). */
static lsc_status check_content(int fd, const hub *h, const hub_file *f, lsc_error *err) {
    bool lfs = is_hex(f->etag, 64), git = is_hex(f->etag, 40);
    if (!lfs && !git) return LSC_OK;
    struct stat st;
    if (fstat(fd, &st) != 0 || lseek(fd, 0, SEEK_SET) != 0)
        return lsc_fail(err, LSC_ERR_IO, "%s: cannot read back: %s", f->name, strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *buf = malloc(1 << 20);
    lsc_status res = LSC_OK;
    if (!md || !buf || !EVP_DigestInit_ex(md, lfs ? EVP_sha256() : EVP_sha1(), NULL)) {
        res = lsc_fail(err, LSC_ERR_NOMEM, "cannot start a hash");
        goto done;
    }
    if (git) {
        char head[48];
        int n = snprintf(head, sizeof head, "blob %lld", (long long)st.st_size);
        EVP_DigestUpdate(md, head, (size_t)n + 1); /* with the NUL */
    }
    for (;;) {
        ssize_t n = read(fd, buf, 1 << 20);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            res = lsc_fail(err, LSC_ERR_IO, "%s: cannot read back: %s", f->name, strerror(errno));
            goto done;
        }
        if (n == 0) break;
        EVP_DigestUpdate(md, buf, (size_t)n);
    }
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int dn = 0;
    EVP_DigestFinal_ex(md, dig, &dn);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < dn; i++) snprintf(hex + 2 * i, 3, "%02x", dig[i]);
    if (strcmp(hex, f->etag) != 0)
        res = lsc_fail(err, LSC_ERR_FORMAT,
                       "%s: %s: the downloaded content has %s %s but the Hub's ETag is %s: the "
                       "download was discarded",
                       h->repo, f->name, lfs ? "sha256" : "git sha1", hex, f->etag);
done:
    free(buf);
    EVP_MD_CTX_free(md);
    return res;
}

/* Opens and locks blobs/{etag}.incomplete, so two processes never write the
 * same one. Sets *fd = -1 when the blob appeared meanwhile (nothing to do). */
static lsc_status open_incomplete(const char *blob, const char *part, int *fd, lsc_error *err) {
    for (int tries = 0; tries < 100; tries++) {
        *fd = -1;
        if (file_exists(blob)) return LSC_OK;
        int d = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (d < 0)
            return lsc_fail(err, LSC_ERR_IO, "cannot write %s: %s (set HF_HUB_CACHE to a "
                            "writable folder)", part, strerror(errno));
        if (flock(d, LOCK_EX) != 0) {
            close(d);
            return lsc_fail(err, LSC_ERR_IO, "cannot lock %s: %s", part, strerror(errno));
        }
        struct stat a, b;
        if (fstat(d, &a) == 0 && stat(part, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev) {
            if (file_exists(blob)) { /* finished by another process */
                unlink(part);
                close(d);
                return LSC_OK;
            }
            *fd = d;
            return LSC_OK;
        }
        close(d); /* renamed or removed while we waited: open again */
    }
    return lsc_fail(err, LSC_ERR_IO, "%s: cannot get hold of the file", part);
}

/* Downloads `f` into blobs/{etag}: resumes an existing .incomplete with a
 * Range request, retries transient failures, checks size and ETag, then
 * renames. A content mismatch or a local write error removes the
 * .incomplete; a network failure keeps it for the next resume. */
static lsc_status fetch_blob(hub *h, const hub_file *f, lsc_error *err) {
    char *blob = str_printf("%s/blobs/%s", h->storage, f->etag);
    char *part = blob ? str_printf("%s.incomplete", blob) : NULL;
    if (!part) {
        free(blob);
        return lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
    }
    int fd;
    lsc_status st = open_incomplete(blob, part, &fd, err);
    if (st || fd < 0) goto out;
    bool keep_part = true; /* on failure, whether the bytes are worth resuming */
    for (int attempt = 1;; attempt++) {
        struct stat s;
        if (fstat(fd, &s) != 0) {
            st = lsc_fail(err, LSC_ERR_IO, "%s: %s", part, strerror(errno));
            break;
        }
        transfer t = {.h = h, .f = f, .fd = fd, .offset = (long long)s.st_size};
        if (f->size >= 0 && t.offset > f->size) { /* not ours: start over */
            if (ftruncate(fd, 0) != 0) {
                st = lsc_fail(err, LSC_ERR_IO, "%s: %s", part, strerror(errno));
                break;
            }
            t.offset = 0;
        }
        if (lseek(fd, t.offset, SEEK_SET) < 0) {
            st = lsc_fail(err, LSC_ERR_IO, "%s: %s", part, strerror(errno));
            break;
        }
        if (h->progress && h->progress(f->name, (uint64_t)t.offset,
                                       (uint64_t)(f->size > 0 ? f->size : 0), h->user_data)) {
            st = lsc_fail(err, LSC_ERR_NETWORK, "%s: download cancelled", f->name);
            break;
        }
        CURLcode rc = CURLE_OK;
        long status = 0;
        if (f->size < 0 || t.offset < f->size) {
            struct curl_slist *hdr = setup_request(h, f->url, f->auth);
            char range[48];
            snprintf(range, sizeof range, "%lld-", t.offset);
            CURL *c = h->curl;
            curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
            curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)HUB_MAX_REDIRECTS);
            curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
            if (t.offset > 0) curl_easy_setopt(c, CURLOPT_RANGE, range);
            curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
            curl_easy_setopt(c, CURLOPT_HEADERDATA, &t.meta);
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
            curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
            curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
            curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
            rc = curl_easy_perform(c);
            curl_slist_free_all(hdr);
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        }
        if (t.write_errno) {
            keep_part = t.write_errno == EPROTO;
            st = lsc_fail(err, LSC_ERR_IO, "cannot write %s: %s", part,
                          t.write_errno == EPROTO ? "the server sent the wrong byte range"
                                                  : strerror(t.write_errno));
            if (t.write_errno != EPROTO) break;
        } else if (t.cancelled) {
            st = lsc_fail(err, LSC_ERR_NETWORK, "%s: download cancelled", f->name);
            break;
        } else if (rc == CURLE_HTTP_RETURNED_ERROR) {
            st = status == 401 || status == 403
                     ? lsc_fail(err, LSC_ERR_AUTH, "%s: %s: download refused (HTTP %ld)",
                                h->repo, f->name, status)
                     : lsc_fail(err, LSC_ERR_NETWORK, "%s: %s: download failed (HTTP %ld)",
                                h->repo, f->name, status);
            if (status != 416 && status < 500) break;
        } else if (rc != CURLE_OK) {
            st = lsc_fail(err, LSC_ERR_NETWORK, "%s: %s: download failed: %s", h->repo, f->name,
                          h->curl_err[0] ? h->curl_err : curl_easy_strerror(rc));
            if (!transient(rc)) break;
        } else {
            long long have = t.offset + t.written;
            if (f->size < 0 || have == f->size) {
                st = LSC_OK;
                break;
            }
            st = lsc_fail(err, LSC_ERR_NETWORK, "%s: %s: got %lld of %lld bytes", h->repo,
                          f->name, have, f->size);
            if (have > f->size) {
                keep_part = false;
                break;
            }
        }
        if (status == 416 && ftruncate(fd, 0) != 0) break; /* bad range: start over */
        if (attempt >= HUB_MAX_ATTEMPTS) break;
        struct timespec pause = {0, 200000000L * attempt};
        nanosleep(&pause, NULL);
    }
    if (st == LSC_OK) st = check_content(fd, h, f, err);
    if (st == LSC_OK && fsync(fd) != 0)
        st = lsc_fail(err, LSC_ERR_IO, "cannot write %s: %s", part, strerror(errno));
    if (st == LSC_OK && rename(part, blob) != 0)
        st = lsc_fail(err, LSC_ERR_IO, "cannot rename %s: %s", part, strerror(errno));
    if (st == LSC_ERR_FORMAT || (st != LSC_OK && !keep_part)) unlink(part);
    if (st == LSC_OK && h->progress) {
        struct stat s;
        long long n = fstat(fd, &s) == 0 ? (long long)s.st_size : 0;
        h->progress(f->name, (uint64_t)n, (uint64_t)n, h->user_data);
    }
    close(fd);
out:
    free(blob);
    free(part);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Writing the snapshot                                                      */
/* ------------------------------------------------------------------------ */

/* Points snapshots/{commit}/{file} at ../../blobs/{etag}: a relative link as
 * huggingface_hub makes, created under a temporary name and renamed over any
 * old or dangling link. */
static lsc_status link_snapshot(const hub *h, const char *commit, const hub_file *f,
                                lsc_error *err) {
    char *link = cache_path(h, "snapshots", commit, f->name);
    char *tmp = link ? str_printf("%s.%ld.tmp", link, (long)getpid()) : NULL;
    char *target = str_printf("../../blobs/%s", f->etag);
    lsc_status st = LSC_OK;
    if (!link || !tmp || !target) {
        st = lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
    } else {
        unlink(tmp);
        if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
            st = lsc_fail(err, LSC_ERR_IO, "cannot link %s: %s", link, strerror(errno));
            unlink(tmp);
        }
    }
    free(link);
    free(tmp);
    free(target);
    return st;
}

/* Records that the Hub has no `file` at `commit` (.no_exist/{commit}/{file},
 * an empty file, as huggingface_hub does). Best effort. */
static void mark_absent(const hub *h, const char *commit, const char *file) {
    char *dir = cache_path(h, ".no_exist", commit, NULL);
    char *path = cache_path(h, ".no_exist", commit, file);
    if (dir && path && make_dirs(dir, NULL) == LSC_OK) {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
        if (fd >= 0) close(fd);
    }
    free(dir);
    free(path);
}

/* Removes the folders of the repo's cache entry that a failed download left
 * empty (rmdir only removes empty ones). */
static void prune_empty(const hub *h, const char *commit) {
    const char *subs[] = {"blobs", "snapshots", "refs", ".no_exist"};
    if (*commit) {
        char *s = cache_path(h, "snapshots", commit, NULL);
        if (s) rmdir(s);
        free(s);
    }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        char *s = lsc_path_join(h->storage, subs[i]);
        if (s) rmdir(s);
        free(s);
    }
    rmdir(h->storage);
}

/* Writes refs/{revision} = commit (folders for "refs/pr/1" style names). */
static lsc_status write_ref(const hub *h, const char *commit, lsc_error *err) {
    char known[41];
    if (!strcmp(h->revision, commit) || (cached_commit(h, known) && !strcmp(known, commit)))
        return LSC_OK; /* unchanged: no write (the cache may be read-only) */
    char *ref = str_printf("%s/refs/%s", h->storage, h->revision);
    if (!ref) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
    char *slash = strrchr(ref, '/');
    *slash = '\0';
    lsc_status st = make_dirs(ref, err);
    *slash = '/';
    if (!st) st = write_atomic(ref, commit, err);
    free(ref);
    return st;
}

/* Tags the cache root for backup tools (CACHEDIR.TAG, as huggingface_hub). */
static void write_cachedir_tag(const hub *h) {
    char *tag = lsc_path_join(h->cache_dir, "CACHEDIR.TAG");
    if (tag && !file_exists(tag))
        write_atomic(tag,
                     "Signature: 8a477f597d28d172789f06886806bc55\n"
                     "# This file is a cache directory tag created by huggingface_hub.\n"
                     "# For information about cache directory tags, see:\n"
                     "#\thttps://bford.info/cachedir/\n",
                     NULL);
    free(tag);
}

/* ------------------------------------------------------------------------ */
/* Resolve and download                                                      */
/* ------------------------------------------------------------------------ */

/* Fills `h` from the parameters and the environment. Free with hub_done. */
static lsc_status hub_init(hub *h, const char *repo, lsc_hub_params p, lsc_error *err) {
    memset(h, 0, sizeof *h);
    h->repo = repo;
    h->revision = p.revision && *p.revision ? p.revision : "main";
    h->offline = p.offline < 0 ? env_true("HF_HUB_OFFLINE") || env_true("TRANSFORMERS_OFFLINE")
                               : p.offline != 0;
    h->progress = p.progress;
    h->user_data = p.user_data;
    const char *ep = p.endpoint ? p.endpoint : getenv("HF_ENDPOINT");
    h->endpoint = strdup(ep && *ep ? ep : HUB_DEFAULT_ENDPOINT);
    const char *tok = p.token ? p.token : getenv("HF_TOKEN");
    if (tok && *tok) h->token = strdup(tok);
    h->cache_dir = p.cache_dir ? expand_user(p.cache_dir) : default_cache_dir();
    if (!h->endpoint || (tok && *tok && !h->token) || !h->cache_dir)
        return lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
    /* repo_folder_name: "models--" + repo id with '/' -> "--" */
    const char *slash = strchr(repo, '/');
    h->storage = slash ? str_printf("%s/models--%.*s--%s", h->cache_dir, (int)(slash - repo), repo,
                                    slash + 1)
                       : str_printf("%s/models--%s", h->cache_dir, repo);
    size_t n = strlen(h->endpoint);
    while (n > 0 && h->endpoint[n - 1] == '/') h->endpoint[--n] = '\0';
    if (!h->storage) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
    if (strncmp(h->endpoint, "http://", 7) && strncmp(h->endpoint, "https://", 8))
        return lsc_fail(err, LSC_ERR_INVALID_ARG,
                        "endpoint '%s' (HF_ENDPOINT) must start with http:// or https://",
                        h->endpoint);
    return check_revision(h->revision, err);
}

/* Frees what hub_init and the transfers allocated. */
static void hub_done(hub *h) {
    if (h->curl) curl_easy_cleanup(h->curl);
    free(h->endpoint);
    free(h->token);
    free(h->cache_dir);
    free(h->storage);
}

/* The message for a model `name` (repo or folder) that has pytorch_model.bin
 * but no model.safetensors: the command that converts it into folder `out`. */
static lsc_status bin_only(const char *name, const char *out, lsc_error *err) {
    return lsc_fail(err, LSC_ERR_UNSUPPORTED,
                    "%s has only pytorch_model.bin and logitscope reads model.safetensors: "
                    "convert it with python -c \"from transformers import AutoModelForCausalLM "
                    "as M; M.from_pretrained('%s').save_pretrained('%s')\"%s%s",
                    name, name, out, strcmp(name, out) ? " and pass --model " : "",
                    strcmp(name, out) ? out : "");
}

/* The message for a repo without model.safetensors: says why and, when the
 * Hub has pytorch_model.bin or a sharded index, how to convert. */
static lsc_status no_safetensors(hub *h, const char *commit, lsc_error *err) {
    lsc_error ignore;
    char c2[41];
    hub_file bin = {.name = "pytorch_model.bin", .size = -1};
    hub_file idx = {.name = "model.safetensors.index.json", .size = -1};
    bool has_bin = head_file(h, commit, &bin, c2, &ignore) == LSC_OK && !bin.absent;
    bool has_idx = !has_bin && head_file(h, commit, &idx, c2, &ignore) == LSC_OK && !idx.absent;
    free(bin.url);
    free(idx.url);
    if (has_idx)
        return lsc_fail(err, LSC_ERR_UNSUPPORTED,
                        "%s stores its weights in several model-*.safetensors shards, which "
                        "logitscope does not read yet: save them as one file with "
                        "transformers' save_pretrained(dir, max_shard_size=\"100GB\")",
                        h->repo);
    if (has_bin) return bin_only(h->repo, "OUT", err);
    return lsc_fail(err, LSC_ERR_NOT_FOUND, "%s (revision %s) has no model.safetensors", h->repo,
                    h->revision);
}

/* The cache-only answer: the snapshot folder when its required files are
 * there, else the message saying what to run. */
static lsc_status from_cache(hub *h, char **dir, lsc_error *err) {
    char commit[41];
    const char *dangling = NULL;
    char rev_flag[300] = "";
    if (strcmp(h->revision, "main") != 0)
        snprintf(rev_flag, sizeof rev_flag, " --revision %s", h->revision);
    if (cached_commit(h, commit) && snapshot_state(h, commit, &dangling) != CACHE_NONE) {
        *dir = cache_path(h, "snapshots", commit, NULL);
        return *dir ? LSC_OK : lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
    }
    if (dangling)
        return lsc_fail(err, LSC_ERR_NOT_FOUND,
                        "%s: the cached %s is a dangling link (its blob is gone from %s/blobs) "
                        "and offline mode is on (HF_HUB_OFFLINE): run 'logitscope download "
                        "%s%s' with network access to repair it",
                        h->repo, dangling, h->storage, h->repo, rev_flag);
    return lsc_fail(err, LSC_ERR_NOT_FOUND,
                    "%s (revision %s) is not in the Hugging Face cache %s and offline mode is "
                    "on (HF_HUB_OFFLINE): run 'logitscope download %s%s' with network access "
                    "first",
                    h->repo, h->revision, h->cache_dir, h->repo, rev_flag);
}

/* libcurl's global setup, once per process: curl_easy_init would otherwise
 * run it itself, which is not thread-safe when several threads (a server's)
 * download at once. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_global_rc = CURLE_FAILED_INIT;
static void curl_setup(void) { curl_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* The download in three phases (see the top of the file). */
static lsc_status download(hub *h, char **dir, lsc_error *err) {
    *dir = NULL;
    if (h->offline) return from_cache(h, dir, err);
    pthread_once(&curl_once, curl_setup);
    if (curl_global_rc != CURLE_OK)
        return lsc_fail(err, LSC_ERR_NETWORK, "cannot start libcurl: %s",
                        curl_easy_strerror(curl_global_rc));
    h->curl = curl_easy_init();
    if (!h->curl) return lsc_fail(err, LSC_ERR_NOMEM, "cannot start libcurl");
    hub_file files[N_HUB_FILES];
    memset(files, 0, sizeof files);
    char commit[41] = "";
    lsc_status st = LSC_OK;
    bool wrote = false;

    /* 1. metadata of every file; config.json first to learn the commit */
    for (int i = 0; i < N_HUB_FILES && !st; i++) {
        hub_file *f = &files[i];
        f->name = hub_files[i];
        f->size = -1;
        if (i > 0) { /* known from an earlier run: commits never change */
            char *snap = cache_path(h, "snapshots", commit, f->name);
            char *none = cache_path(h, ".no_exist", commit, f->name);
            f->present = snap && file_exists(snap);
            f->absent = !f->present && i >= N_REQUIRED && none && file_exists(none);
            free(snap);
            free(none);
            if (f->present || f->absent) continue;
        }
        char got[41] = "";
        st = head_file(h, i == 0 ? h->revision : commit, f, got, err);
        if (st) break;
        if (i == 0) {
            if (f->absent) {
                st = lsc_fail(err, LSC_ERR_NOT_FOUND,
                              "%s (revision %s) has no config.json: not a transformers model",
                              h->repo, h->revision);
                break;
            }
            memcpy(commit, got, 41);
            char *snap = cache_path(h, "snapshots", commit, f->name);
            f->present = snap && file_exists(snap);
            free(snap);
        } else if (f->absent && i < N_REQUIRED) {
            st = no_safetensors(h, commit, err);
        }
    }

    /* 2. the blobs the cache lacks, largest (the weights) first */
    static const int order[N_HUB_FILES] = {1, 0, 2, 3, 4, 5};
    for (int k = 0; k < N_HUB_FILES && !st; k++) {
        hub_file *f = &files[order[k]];
        if (f->present || f->absent) continue;
        char *blob = str_printf("%s/blobs/%s", h->storage, f->etag);
        bool have = blob && file_exists(blob);
        free(blob);
        if (have) continue;
        char *blobs = lsc_path_join(h->storage, "blobs");
        st = blobs ? make_dirs(blobs, err) : lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
        free(blobs);
        wrote = true;
        if (!st) st = fetch_blob(h, f, err);
    }

    /* 3. snapshot links, absence markers, the ref */
    if (!st) {
        char *snap = cache_path(h, "snapshots", commit, NULL);
        st = snap ? make_dirs(snap, err) : lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
        wrote = true;
        for (int i = 0; i < N_HUB_FILES && !st; i++) {
            if (files[i].absent) mark_absent(h, commit, files[i].name);
            else if (!files[i].present) st = link_snapshot(h, commit, &files[i], err);
        }
        if (!st) st = write_ref(h, commit, err);
        if (!st) write_cachedir_tag(h);
        if (!st) *dir = snap;
        else free(snap);
    }
    if (st && wrote) prune_empty(h, commit);
    for (int i = 0; i < N_HUB_FILES; i++) free(files[i].url);
    return st;
}

lsc_hub_params lsc_hub_default_params(void) {
    lsc_hub_params p = {0};
    p.offline = -1;
    return p;
}

lsc_status lsc_hub_download(const char *repo_id, lsc_hub_params params, char **dir,
                            lsc_error *err) {
    *dir = NULL;
    lsc_status st = lsc_hub_check_repo_id(repo_id, err);
    if (st) return st;
    hub h;
    st = hub_init(&h, repo_id, params, err);
    if (!st) st = download(&h, dir, err);
    hub_done(&h);
    return st;
}

/* True when `name` is written as a path rather than a repo id. */
static bool looks_like_path(const char *name) {
    size_t n = strlen(name);
    return name[0] == '/' || name[0] == '~' || !strncmp(name, "./", 2) ||
           !strncmp(name, "../", 3) || !strcmp(name, ".") || !strcmp(name, "..") ||
           (n > 0 && name[n - 1] == '/');
}

lsc_status lsc_hub_resolve(const char *name, lsc_hub_params params, char **dir,
                           lsc_error *err) {
    *dir = NULL;
    if (!name || !*name) return lsc_fail(err, LSC_ERR_INVALID_ARG, "the model name is empty");
    struct stat st_;
    if (stat(name, &st_) == 0) {
        if (!S_ISDIR(st_.st_mode))
            return lsc_fail(err, LSC_ERR_INVALID_ARG,
                            "%s is a file: give the folder that holds config.json and "
                            "model.safetensors, or a Hub repo id",
                            name);
        if (params.revision && *params.revision)
            return lsc_fail(err, LSC_ERR_INVALID_ARG,
                            "a revision applies to Hub repo ids, and %s is a local folder", name);
        char *st_path = lsc_path_join(name, "model.safetensors");
        char *bin_path = lsc_path_join(name, "pytorch_model.bin");
        bool only_bin = st_path && bin_path && !file_exists(st_path) && file_exists(bin_path);
        free(st_path);
        free(bin_path);
        if (only_bin) return bin_only(name, name, err);
        *dir = strdup(name);
        return *dir ? LSC_OK : lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
    }
    if (looks_like_path(name))
        return lsc_fail(err, LSC_ERR_NOT_FOUND, "%s: no such folder", name);
    lsc_status st = lsc_hub_check_repo_id(name, err);
    if (st) return st;
    hub h;
    st = hub_init(&h, name, params, err);
    if (!st) {
        char commit[41];
        const char *dangling;
        cache_state cs = cached_commit(&h, commit) ? snapshot_state(&h, commit, &dangling)
                                                   : CACHE_NONE;
        if (cs == CACHE_COMPLETE) {
            *dir = cache_path(&h, "snapshots", commit, NULL);
            if (!*dir) st = lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
        } else {
            lsc_error dl_err;
            st = download(&h, dir, &dl_err);
            if (st == LSC_ERR_NETWORK && cs == CACHE_USABLE) { /* offline but cached */
                *dir = cache_path(&h, "snapshots", commit, NULL);
                st = *dir ? LSC_OK : lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
            } else if (st && err) {
                *err = dl_err;
            }
        }
    }
    hub_done(&h);
    return st;
}
