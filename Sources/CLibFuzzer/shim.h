// libFuzzer's driver, linked in by `-sanitize=fuzzer` (scripts/fuzz). Only FuzzSupport
// imports this, and only calls it in a fuzzing build (`-D FUZZING`), so a normal build
// needs no libFuzzer.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));
