/*
 * fuzz/driver/replay.c: runs a libFuzzer target over its checked-in corpus once, without
 * libFuzzer, so every build mode (release, ASan+UBSan) replays every corpus in `make test`.
 *
 * The binary is built per target with RF_FUZZ_CORPUS naming the corpus folder. With no
 * arguments it replays that folder; with arguments it replays those files and folders
 * (handy to reproduce a crash: `build/asan/fuzz/replay-tmpl crash-1234`). Each input is
 * read into a buffer of exactly its size, so an over-read hits ASan's redzone. A corpus
 * that is missing or empty fails: a replay that tests nothing must not pass.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

#define INPUT_BYTES_MAX (4u << 20)

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long len;

    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || len > INPUT_BYTES_MAX ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "replay: %s: unreadable or larger than %u bytes\n", path,
                INPUT_BYTES_MAX);
        fclose(f);
        return -1;
    }
    buf = malloc(len ? (size_t)len : 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "replay: %s: short read\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)len);
    free(buf);
    return 0;
}

/* Replays a file or every regular file of a folder; returns the inputs run or -1. */
static long replay_path(const char *path)
{
    struct stat st;
    struct dirent **ents;
    long n = 0;
    int k;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path) == 0 ? 1 : -1;
    k = scandir(path, &ents, NULL, alphasort); /* sorted: the same order every run */
    if (k < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (int i = 0; i < k; i++) {
        char full[4096];
        if (ents[i]->d_name[0] != '.' && n >= 0) {
            snprintf(full, sizeof(full), "%s/%s", path, ents[i]->d_name);
            if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
                n = replay_file(full) == 0 ? n + 1 : -1;
        }
        free(ents[i]);
    }
    free(ents);
    return n;
}

int main(int argc, char **argv)
{
    const char *def[] = {RF_FUZZ_CORPUS};
    const char **paths = argc > 1 ? (const char **)argv + 1 : def;
    int npaths = argc > 1 ? argc - 1 : 1;
    long total = 0;

    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 0; i < npaths; i++) {
        long n = replay_path(paths[i]);
        if (n < 0)
            return 1;
        total += n;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no inputs in %s\n", paths[0]);
        return 1;
    }
    printf("replay %s: %ld inputs, no crash\n", paths[0], total);
    return 0;
}
