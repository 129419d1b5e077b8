/* How long does deleting a written 128 MiB file stall an fdatasync running beside it?
 *
 *   gcc -O2 -pthread -o /tmp/delete_stall docs/probes/delete_stall.c
 *   /tmp/delete_stall /tmp 128   # free it in one go (what unlink does)
 *   /tmp/delete_stall /tmp 4     # shrink it 4 MiB at a time, syncing each step
 *
 * A second thread appends 4 KiB and fdatasyncs in a loop; the worst latency it saw while the
 * file was being freed is printed. Used to choose the file channel's spare/deletion strategy
 * (docs/file-channel.md, "Consumed segments are reused, not deleted").
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *dir;
static volatile int stop;
static double worst;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void *syncer(void *arg) {
    (void)arg;
    char path[4096], block[4096];
    memset(block, 1, sizeof block);
    snprintf(path, sizeof path, "%s/delete_stall.sync", dir);
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    for (long i = 0; !stop; i++) {
        double t = now_ms();
        if (pwrite(fd, block, sizeof block, (i % 1000) * 4096) < 0 || fdatasync(fd) < 0) break;
        double d = now_ms() - t;
        if (d > worst) worst = d;
        usleep(500);
    }
    close(fd);
    unlink(path);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s DIR STEP_MIB\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    const long size = 128L << 20, step = atol(argv[2]) << 20;
    char path[4096];
    snprintf(path, sizeof path, "%s/delete_stall.seg", dir);
    char *mib = malloc(1 << 20);
    memset(mib, 'x', 1 << 20);
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0 || fallocate(fd, 0, 0, size) != 0) { perror(path); return 1; }
    for (long off = 0; off < size; off += 1 << 20)
        if (pwrite(fd, mib, 1 << 20, off) < 0) { perror("pwrite"); return 1; }
    fdatasync(fd);

    pthread_t th;
    pthread_create(&th, NULL, syncer, NULL);
    usleep(100000);
    worst = 0;
    double t = now_ms();
    if (step >= size) {
        close(fd);
        unlink(path);
    } else {
        for (long len = size - step; len >= 0; len -= step) {
            if (ftruncate(fd, len) != 0 || fdatasync(fd) != 0) break;
        }
        close(fd);
        unlink(path);
    }
    double took = now_ms() - t;
    usleep(300000);
    stop = 1;
    pthread_join(th, NULL);
    printf("freed 128 MiB in %ld MiB steps: %.1f ms in all; worst fdatasync beside it: %.1f ms\n",
           step >> 20, took, worst);
    return 0;
}
