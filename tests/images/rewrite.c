/* A compiled file encryptor for the mass-rewrite detection scenarios: for each path
 * given, reads the file, XORs it with a keystream (xorshift64*, seeded from the key
 * argument) and writes the result back in place (-i), or to PATH.EXT and removes
 * PATH (-e EXT). What ransomware does to each file, without any library. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t state;
static unsigned char next_byte(void) {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (unsigned char)((state * 2685821657736338717ULL) >> 56);
}

static int rewrite(const char *path, const char *ext) {
    FILE *in = fopen(path, "rb");
    if (!in) { perror(path); return 1; }
    static unsigned char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    for (size_t i = 0; i < n; i++) buf[i] ^= next_byte();
    char out_path[4096];
    if (ext) snprintf(out_path, sizeof out_path, "%s.%s", path, ext);
    else snprintf(out_path, sizeof out_path, "%s", path);
    FILE *out = fopen(out_path, "wb");
    if (!out) { perror(out_path); return 1; }
    fwrite(buf, 1, n, out);
    fclose(out);
    if (ext && unlink(path) != 0) { perror(path); return 1; }
    return 0;
}

int main(int argc, char **argv) {
    const char *ext = NULL;
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "-e") == 0) { ext = argv[2]; i = 3; }
    else if (argc > 1 && strcmp(argv[1], "-i") == 0) { i = 2; }
    state = 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid();
    int rc = 0;
    for (; i < argc; i++) rc |= rewrite(argv[i], ext);
    return rc;
}
