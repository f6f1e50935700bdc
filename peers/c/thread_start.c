/* How long a new thread waits for a core that has been idle: the cost, on
 * this machine, of handing work to a second thread (nnc's readers start
 * their helper threads when the work is ready; so does every peer).
 *
 * Each of 50 rounds sleeps IDLE_US microseconds (both cores idle), keeps
 * this core busy for 2 ms, starts a thread and keeps this core busy for 3 ms
 * more, so the thread must run on the other core; it prints the mean and
 * the longest time from pthread_create to the thread's first instruction.
 * On bare metal this is tens of microseconds; on the 2-vCPU KVM guest of
 * BENCHMARKS.md (guest_halt_poll_ns=0: an idle vCPU halts at once) it was
 * 165 µs after no idle time, 362 µs after 1 ms and 1.4 ms after 10 ms, at
 * worst 3 ms (session 11).
 *
 *   cc -O2 -pthread peers/c/thread_start.c -o thread_start
 *   taskset -c 0-1 ./thread_start IDLE_US
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

static double started;

static void *first_instruction(void *arg) {
    (void)arg;
    started = now_us();
    return NULL;
}

static void busy(double us) {
    double t0 = now_us();
    while (now_us() - t0 < us) {
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s IDLE_US\n", argv[0]);
        return 2;
    }
    int idle = atoi(argv[1]), rounds = 50;
    double total = 0, longest = 0;
    for (int i = 0; i < rounds; i++) {
        usleep(idle);
        busy(2000);
        pthread_t thread;
        double asked = now_us();
        if (pthread_create(&thread, NULL, first_instruction, NULL) != 0) {
            perror("pthread_create");
            return 1;
        }
        busy(3000);
        pthread_join(thread, NULL);
        double waited = started - asked;
        total += waited;
        if (waited > longest) longest = waited;
    }
    printf("idle %d us before: a new thread started %.1f us later on average, %.1f us at worst (%d rounds)\n",
           idle, total / rounds, longest, rounds);
    return 0;
}
