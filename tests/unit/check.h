/* check.h - a minimal assertion harness for the C unit tests. Each test file
 * defines its tests as functions and lists them in main() with RUN(). */
#ifndef LSC_CHECK_H
#define LSC_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        check_count++;                                                           \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                    \
        }                                                                        \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                    \
    do {                                                                         \
        double check_a_ = (a), check_b_ = (b);                                   \
        check_count++;                                                           \
        if (!(fabs(check_a_ - check_b_) <= (tol))) {                             \
            fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.9g, %s = %.9g (tol %g)\n", \
                    __FILE__, __LINE__, #a, check_a_, #b, check_b_, (double)(tol)); \
            check_failures++;                                                    \
        }                                                                        \
    } while (0)

#define RUN(test)                                                                \
    do {                                                                         \
        int before_ = check_failures;                                            \
        test();                                                                  \
        printf("%s %s\n", check_failures == before_ ? "ok  " : "FAIL", #test);   \
    } while (0)

#define CHECK_DONE()                                                             \
    (printf("%d checks, %d failed\n", check_count, check_failures),              \
     check_failures ? EXIT_FAILURE : EXIT_SUCCESS)

#endif
