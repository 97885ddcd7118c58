/* corpus_main.c: replays every file of a fuzz corpus directory through a
 * libFuzzer entry point, so committed inputs stay regression tests in the
 * ordinary build (no clang needed).  Exits non-zero if the directory is
 * missing or empty: a test that ran nothing must not pass. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int corpus_run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  uint8_t *buf = malloc(1 << 20);
  if (!buf) {
    fclose(f);
    return -1;
  }
  size_t n = fread(buf, 1, 1 << 20, f);
  fclose(f);
  /* copy to an exact-size allocation so ASan sees any overread */
  uint8_t *exact = malloc(n ? n : 1);
  if (!exact) {
    free(buf);
    return -1;
  }
  memcpy(exact, buf, n);
  free(buf);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR...\n", argv[0]);
    return 2;
  }
  int files = 0;
  for (int a = 1; a < argc; a++) {
    DIR *d = opendir(argv[a]);
    if (!d) {
      perror(argv[a]);
      return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.')
        continue;
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[a], e->d_name);
      if (corpus_run_file(path) != 0) {
        closedir(d);
        return 1;
      }
      files++;
    }
    closedir(d);
  }
  printf("replayed %d corpus inputs\n", files);
  return files > 0 ? 0 : 1;
}
