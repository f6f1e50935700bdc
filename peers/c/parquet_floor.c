/* The least a Parquet load + bind of the tall file can cost on this machine:
 * what no reader of a 10^6-row, 21-column file of doubles (snappy, which
 * leaves random doubles as they are) can avoid, and nothing else.
 *
 *   - map the file and read every byte of it once (page faults on the page
 *     cache), copying each column's bytes through a small buffer, as a
 *     decompressor of incompressible pages does;
 *   - convert to f32 and write the row-major table nnc binds (20 features,
 *     the label one-hot in 3) into fresh MADV_HUGEPAGE memory;
 *   - give the map's pages back in runs of 512 KB (MADV_DONTNEED), which
 *     keeps RSS near the table, as nnc does (RELEASE=0: not given back).
 *
 * No page headers, no snappy parsing, no levels, no checks: the columns are
 * taken as 21 stretches of the file (the label's bits modulo 3 stand for
 * its class). Rows are split into THREADS equal ranges, one per thread, as
 * nnc splits a row group. It prints the milliseconds from open() to the
 * last thread's end. peers/scale.py runs it beside nnc and pandas.
 *
 *   cc -O3 -march=native -pthread peers/c/parquet_floor.c -o parquet_floor
 *   ./parquet_floor FILE ROWS THREADS [RELEASE]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#define COLS 21
#define FEATURES 20
#define WIDTH 23
#define BLOCK 4096
#define RUN (512 << 10)
#define PAGE 4096

static const unsigned char *map;
static size_t chunk; /* bytes between one column's start and the next's */
static float *table;
static long rows;
static int threads, release;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *read_range(void *arg) {
    long t = (long)arg, first = rows * t / threads, last = rows * (t + 1) / threads;
    static __thread double block[COLS][BLOCK];
    size_t given_back[COLS];
    for (int c = 0; c < COLS; c++) given_back[c] = (size_t)c * chunk + (size_t)first * 8 / PAGE * PAGE;
    for (long r = first; r < last; r += BLOCK) {
        long n = last - r < BLOCK ? last - r : BLOCK;
        for (int c = 0; c < COLS; c++) {
            memcpy(block[c], map + (size_t)c * chunk + (size_t)r * 8, n * 8);
            size_t end = (size_t)c * chunk + (size_t)(r + n) * 8;
            if (release && end - given_back[c] >= RUN) {
                size_t whole = end / PAGE * PAGE;
                madvise((void *)(map + given_back[c]), whole - given_back[c], MADV_DONTNEED);
                given_back[c] = whole;
            }
        }
        for (long i = 0; i < n; i++) {
            float *row = table + (size_t)(r + i) * WIDTH;
            for (int c = 0; c < FEATURES; c++) row[c] = (float)block[c][i];
            uint64_t bits;
            memcpy(&bits, &block[FEATURES][i], 8);
            int k = bits % 3;
            row[20] = k == 0, row[21] = k == 1, row[22] = k == 2;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s FILE ROWS THREADS [RELEASE]\n", argv[0]);
        return 2;
    }
    double start = now();
    rows = atol(argv[2]), threads = atoi(argv[3]), release = argc < 5 || atoi(argv[4]);
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || threads < 1 || threads > 64 || (size_t)st.st_size < (size_t)rows * 8) {
        fprintf(stderr, "cannot read %s (or bad ROWS/THREADS)\n", argv[1]);
        return 1;
    }
    /* 21 stretches, the last ending at the file's end. */
    chunk = ((size_t)st.st_size - (size_t)rows * 8) / (COLS - 1) / PAGE * PAGE;
    map = mmap(0, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    size_t bytes = (size_t)rows * WIDTH * 4, huge = 2 << 20;
    unsigned char *room = mmap(0, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED || room == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    table = (float *)(((uintptr_t)room + huge - 1) & ~(uintptr_t)(huge - 1));
    madvise(table, bytes, MADV_HUGEPAGE);
    pthread_t thread[64];
    for (long t = 0; t < threads; t++) pthread_create(&thread[t], 0, read_range, (void *)t);
    for (int t = 0; t < threads; t++) pthread_join(thread[t], 0);
    printf("%.2f ms\n", (now() - start) * 1e3);
    return 0;
}
