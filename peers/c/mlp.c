/*
 * peers/c/mlp.c — the "C loop" peer of peers/speed.py: a hand-written training
 * loop for a two-layer network (PEERS.md's tasks), plain C, float32.
 *
 *   h   = act(x · W1 + b1)        W1 stored [NIN][NH]   act = tanh | relu
 *   out = h · W2 + b2             W2 stored [NH][NOUT]
 *   loss = softmax cross-entropy (mean over the batch's rows)   -DSOFTMAX
 *        | mse (mean over all elements of the batch)            otherwise
 *
 * Plain SGD, rows in file order, the last partial batch kept (its mean is over
 * its own rows), forward + backward + update per batch. Only the training loop
 * is timed (clock_gettime, CLOCK_MONOTONIC); it also computes the epoch loss
 * (the mean of the batch losses), as nnc does. Then the loss over the whole set
 * with the final weights is computed (not timed).
 *
 * The sizes are compile-time parameters, so gcc can unroll and vectorise:
 *
 *   gcc -O3 -march=native -DNIN=4 -DNH=8 -DNOUT=3 -DBATCH=16 -DHIDDEN_TANH -DSOFTMAX \
 *       -o mlp_iris peers/c/mlp.c -lm
 *
 * (-DHIDDEN_RELU instead of -DHIDDEN_TANH; no -DSOFTMAX for mse.)
 *
 * Usage: mlp DATA.csv EPOCHS LR PREPROCESS [INIT.bin]
 *   PREPROCESS  none | div16 (features / 16) | standardize (features and
 *               target: (v - mean) / std, population std, all rows, in double)
 *   INIT.bin    float32 little-endian W1[NIN*NH] b1[NH] W2[NH*NOUT] b2[NOUT];
 *               without it: Xavier-uniform from a fixed xorshift, zero biases.
 * The CSV's last column is the target (a class index 0..NOUT-1 with -DSOFTMAX,
 * else the value); the other NIN columns are the inputs; a first line that is
 * not all numbers is a header.
 *
 * Prints one JSON object on stdout:
 *   {"rows":..,"samples":..,"train_ms":..,"samples_per_second":..,
 *    "last_epoch_loss":..,"final_loss":..}
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if !defined(NIN) || !defined(NH) || !defined(NOUT) || !defined(BATCH)
#error "define NIN, NH, NOUT and BATCH (e.g. -DNIN=4 -DNH=8 -DNOUT=3 -DBATCH=16)"
#endif
#if defined(HIDDEN_TANH) == defined(HIDDEN_RELU)
#error "define exactly one of HIDDEN_TANH, HIDDEN_RELU"
#endif

static float W1[NIN * NH], B1[NH], W2[NH * NOUT], B2[NOUT];

/* Per-batch scratch: hidden activations and the two layers' deltas. */
static float H[BATCH][NH], D1[BATCH][NH], D2[BATCH][NOUT];

static void die(const char *msg, const char *arg)
{
    fprintf(stderr, "mlp: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    exit(1);
}

/* ---------------------------------------------------------------- data */

static int parse_line(char *line, double *vals, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\0' || *p == '\n' || *p == '\r') break;
        char *end;
        double v = strtod(p, &end);
        if (end == p) return -1; /* not a number */
        if (n < max) vals[n] = v;
        n++;
        p = end;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == ',') p++;
        else if (*p == '\0' || *p == '\n' || *p == '\r') break;
        else return -1;
    }
    return n;
}

/* Reads the CSV into X[n][NIN], Y[n][NOUT] (float32, preprocessed in double). */
static int load(const char *path, const char *pre, float **xo, float **yo)
{
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open", path);
    size_t cap = 1024, n = 0;
    double *raw = malloc(cap * (NIN + 1) * sizeof(double));
    char *line = NULL;
    size_t len = 0;
    double vals[NIN + 2];
    int first = 1;
    while (getline(&line, &len, f) != -1) {
        int k = parse_line(line, vals, NIN + 2);
        if (k == 0) continue;
        if (k < 0) {
            if (first) { first = 0; continue; } /* header */
            die("not a number in", path);
        }
        first = 0;
        if (k != NIN + 1) die("wrong number of columns in", path);
        if (n == cap) {
            cap *= 2;
            raw = realloc(raw, cap * (NIN + 1) * sizeof(double));
        }
        memcpy(raw + n * (NIN + 1), vals, (NIN + 1) * sizeof(double));
        n++;
    }
    free(line);
    fclose(f);
    if (n == 0) die("no rows in", path);

    if (strcmp(pre, "div16") == 0) {
        for (size_t r = 0; r < n; r++)
            for (int c = 0; c < NIN; c++) raw[r * (NIN + 1) + c] /= 16.0;
    } else if (strcmp(pre, "standardize") == 0 || strcmp(pre, "standardise") == 0) {
        for (int c = 0; c < NIN + 1; c++) { /* features and target */
            double mean = 0, var = 0;
            for (size_t r = 0; r < n; r++) mean += raw[r * (NIN + 1) + c];
            mean /= (double)n;
            for (size_t r = 0; r < n; r++) {
                double d = raw[r * (NIN + 1) + c] - mean;
                var += d * d;
            }
            double sd = sqrt(var / (double)n); /* population std */
            if (sd == 0) sd = 1;
            for (size_t r = 0; r < n; r++)
                raw[r * (NIN + 1) + c] = (raw[r * (NIN + 1) + c] - mean) / sd;
        }
    } else if (strcmp(pre, "none") != 0) {
        die("unknown preprocessing", pre);
    }

    float *x = aligned_alloc(64, ((n * NIN * sizeof(float)) + 63) / 64 * 64);
    float *y = aligned_alloc(64, ((n * NOUT * sizeof(float)) + 63) / 64 * 64);
    for (size_t r = 0; r < n; r++) {
        for (int c = 0; c < NIN; c++) x[r * NIN + c] = (float)raw[r * (NIN + 1) + c];
        double t = raw[r * (NIN + 1) + NIN];
#ifdef SOFTMAX
        int cls = (int)t;
        if (cls < 0 || cls >= NOUT || (double)cls != t) die("bad class index in", path);
        for (int k = 0; k < NOUT; k++) y[r * NOUT + k] = (k == cls) ? 1.0f : 0.0f;
#else
        for (int k = 0; k < NOUT; k++) y[r * NOUT + k] = (float)t;
#endif
    }
    free(raw);
    *xo = x;
    *yo = y;
    return (int)n;
}

static void init_weights(const char *path)
{
    if (path) {
        FILE *f = fopen(path, "rb");
        if (!f) die("cannot open", path);
        size_t want[4] = {NIN * NH, NH, NH * NOUT, NOUT};
        float *dst[4] = {W1, B1, W2, B2};
        for (int i = 0; i < 4; i++)
            if (fread(dst[i], sizeof(float), want[i], f) != want[i]) die("short init file", path);
        fclose(f);
        return;
    }
    unsigned long long s = 0x9E3779B97F4A7C15ull;
    float *w[2] = {W1, W2};
    int fan[3] = {NIN, NH, NOUT};
    for (int l = 0; l < 2; l++) {
        float a = sqrtf(6.0f / (float)(fan[l] + fan[l + 1]));
        for (int i = 0; i < fan[l] * fan[l + 1]; i++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            w[l][i] = a * (2.0f * (float)((s >> 40) * 0x1p-24) - 1.0f);
        }
    }
    memset(B1, 0, sizeof B1);
    memset(B2, 0, sizeof B2);
}

/* ---------------------------------------------------------------- model */

static inline float act(float z)
{
#ifdef HIDDEN_TANH
    return tanhf(z);
#else
    return z > 0.0f ? z : 0.0f;
#endif
}

/* Forward one row: fills h[NH], o[NOUT]. */
static inline void forward(const float *restrict x, float *restrict h, float *restrict o)
{
    float z[NH];
    for (int j = 0; j < NH; j++) z[j] = B1[j];
    for (int i = 0; i < NIN; i++) {
        const float xi = x[i];
        for (int j = 0; j < NH; j++) z[j] += xi * W1[i * NH + j];
    }
    for (int j = 0; j < NH; j++) h[j] = act(z[j]);
    for (int k = 0; k < NOUT; k++) o[k] = B2[k];
    for (int j = 0; j < NH; j++) {
        const float hj = h[j];
        for (int k = 0; k < NOUT; k++) o[k] += hj * W2[j * NOUT + k];
    }
}

/* Loss of one row given its output o (overwritten with d loss / d o, unscaled). */
static inline float loss_and_delta(float *restrict o, const float *restrict y)
{
#ifdef SOFTMAX
    float m = o[0];
    for (int k = 1; k < NOUT; k++) m = o[k] > m ? o[k] : m;
    float e[NOUT], s = 0.0f;
    for (int k = 0; k < NOUT; k++) {
        o[k] -= m; /* o now holds z - m */
        e[k] = expf(o[k]);
        s += e[k];
    }
    const float lse = logf(s), inv = 1.0f / s;
    float l = 0.0f;
    for (int k = 0; k < NOUT; k++) {
        l -= y[k] * (o[k] - lse); /* -y log p, log p = (z - m) - lse */
        o[k] = e[k] * inv - y[k];
    }
    return l;
#else
    float l = 0.0f;
    for (int k = 0; k < NOUT; k++) {
        const float d = o[k] - y[k];
        l += d * d;
        o[k] = 2.0f * d;
    }
    return l / (float)NOUT;
#endif
}

/* One SGD step on rows x[bs][NIN], y[bs][NOUT]; returns the batch loss. */
static float step(const float *restrict x, const float *restrict y, int bs, float lr)
{
#ifdef SOFTMAX
    const float scale = 1.0f / (float)bs;
#else
    const float scale = 1.0f / (float)(bs * NOUT); /* the 2 is in the delta */
#endif
    float loss = 0.0f;
    for (int b = 0; b < bs; b++) {
        float o[NOUT];
        forward(x + b * NIN, H[b], o);
        loss += loss_and_delta(o, y + b * NOUT);
        for (int k = 0; k < NOUT; k++) D2[b][k] = o[k] * scale;
        /* delta of the hidden layer, with the weights before this step's update */
        for (int j = 0; j < NH; j++) {
            float acc = 0.0f;
            for (int k = 0; k < NOUT; k++) acc += D2[b][k] * W2[j * NOUT + k];
#ifdef HIDDEN_TANH
            D1[b][j] = acc * (1.0f - H[b][j] * H[b][j]);
#else
            D1[b][j] = H[b][j] > 0.0f ? acc : 0.0f;
#endif
        }
    }
    /* W2 -= lr · Hᵀ D2, b2 -= lr · Σ_b D2 */
    for (int j = 0; j < NH; j++) {
        float g[NOUT] = {0};
        for (int b = 0; b < bs; b++) {
            const float hj = H[b][j];
            for (int k = 0; k < NOUT; k++) g[k] += hj * D2[b][k];
        }
        for (int k = 0; k < NOUT; k++) W2[j * NOUT + k] -= lr * g[k];
    }
    {
        float g[NOUT] = {0};
        for (int b = 0; b < bs; b++)
            for (int k = 0; k < NOUT; k++) g[k] += D2[b][k];
        for (int k = 0; k < NOUT; k++) B2[k] -= lr * g[k];
    }
    /* W1 -= lr · Xᵀ D1, b1 -= lr · Σ_b D1 */
    for (int i = 0; i < NIN; i++) {
        float g[NH] = {0};
        for (int b = 0; b < bs; b++) {
            const float xi = x[b * NIN + i];
            for (int j = 0; j < NH; j++) g[j] += xi * D1[b][j];
        }
        for (int j = 0; j < NH; j++) W1[i * NH + j] -= lr * g[j];
    }
    {
        float g[NH] = {0};
        for (int b = 0; b < bs; b++)
            for (int j = 0; j < NH; j++) g[j] += D1[b][j];
        for (int j = 0; j < NH; j++) B1[j] -= lr * g[j];
    }
    return loss / (float)bs;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: %s DATA.csv EPOCHS LR none|div16|standardize [INIT.bin]\n", argv[0]);
        return 2;
    }
    const int epochs = atoi(argv[2]);
    const float lr = strtof(argv[3], NULL);
    float *x, *y;
    const int n = load(argv[1], argv[4], &x, &y);
    init_weights(argc == 6 ? argv[5] : NULL);

    double epoch_loss = 0.0;
    const double t0 = now_s();
    for (int e = 0; e < epochs; e++) {
        float sum = 0.0f; /* Σ over batches of batch loss × rows */
        for (int start = 0; start < n; start += BATCH) {
            const int bs = n - start < BATCH ? n - start : BATCH;
            sum += step(x + (size_t)start * NIN, y + (size_t)start * NOUT, bs, lr) * (float)bs;
        }
        epoch_loss = sum / (float)n;
    }
    const double t1 = now_s();

    /* Loss over the whole set with the final weights (not timed). */
    double total = 0.0;
    for (int r = 0; r < n; r++) {
        float h[NH], o[NOUT];
        forward(x + (size_t)r * NIN, h, o);
        total += loss_and_delta(o, y + (size_t)r * NOUT);
    }
    const double secs = t1 - t0;
    const double samples = (double)n * (double)epochs;
    printf("{\"rows\":%d,\"samples\":%.0f,\"train_ms\":%.6f,\"samples_per_second\":%.3f,"
           "\"last_epoch_loss\":%.9g,\"final_loss\":%.9g}\n",
           n, samples, secs * 1e3, secs > 0 ? samples / secs : 0.0, epoch_loss,
           (double)(float)(total / n));
    return 0;
}
