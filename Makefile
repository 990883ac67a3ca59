# probelogits — build, test, fuzz, format.
#   make                      library + CLI (build/)
#   make test                 all tests (needs ../shared/fixtures)
#   make SANITIZE=address,undefined test   same under ASan/UBSan (build-san/)
#   make stress               enforcement races and audit crash tests at stress sizes
#   make fuzz                 libFuzzer targets (clang, build-fuzz/)
#   make format               clang-format in place
CC ?= cc
OPT ?= -O2
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wformat=2 \
        -Wno-format-nonliteral
ifeq ($(WERROR),1)
WARN += -Werror
endif
ifneq ($(SANITIZE),)
BUILD ?= build-san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD ?= build
SANFLAGS :=
endif
# Never -ffast-math: probabilities and thresholds are computed on this path.
CFLAGS := -std=c17 $(OPT) -g -fno-fast-math -D_GNU_SOURCE -Iinclude -Isrc $(WARN) $(SANFLAGS) $(EXTRA_CFLAGS)
LDFLAGS := $(SANFLAGS) $(EXTRA_LDFLAGS)
LIBS := -lpcre2-8 -ljson-c -lyaml -lseccomp -lcrypto -lm -lpthread

AVX2_FLAGS := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mfma -mf16c

CLI_SRC := $(wildcard src/cli*.c)
LIB_SRC := $(filter-out $(CLI_SRC),$(wildcard src/*.c))
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
CLI_OBJ := $(CLI_SRC:src/%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/%)
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
REPLAY_BIN := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/replay_%)

.PHONY: all test stress fuzz format clean check-format
all: $(BUILD)/probelogits $(BUILD)/libprobelogits.a

$(BUILD)/obj/%_avx2.o: src/%_avx2.c $(wildcard src/*.h include/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) $(AVX2_FLAGS) -c $< -o $@
$(BUILD)/obj/%_avx512.o: src/%_avx512.c $(wildcard src/*.h include/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -c $< -o $@
$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h include/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/obj:
	mkdir -p $@

$(BUILD)/libprobelogits.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^
$(BUILD)/probelogits: $(CLI_OBJ) $(BUILD)/libprobelogits.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
$(BUILD)/test_%: tests/test_%.c $(wildcard tests/*.h) $(BUILD)/libprobelogits.a
	$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libprobelogits.a $(LDFLAGS) $(LIBS)
$(BUILD)/replay_%: fuzz/%.c fuzz/replay.c $(BUILD)/libprobelogits.a
	$(CC) $(CFLAGS) -o $@ $< fuzz/replay.c $(BUILD)/libprobelogits.a $(LDFLAGS) $(LIBS)

test: all $(TEST_BIN) $(REPLAY_BIN)
	BUILD=$(BUILD) bash tests/run.sh

# The enforcement and audit tests with their stress sizes (>= 20,000
# argument-swap races per syscall, 2,000 audit crash rounds).
stress: all $(BUILD)/test_enforce $(BUILD)/test_supervisor $(BUILD)/test_audit $(BUILD)/test_audit_crash
	PL_STRESS=1 $(BUILD)/test_enforce && PL_STRESS=1 $(BUILD)/test_supervisor && PL_STRESS=1 $(BUILD)/test_audit && \
	  PL_STRESS=1 $(BUILD)/test_audit_crash

# libFuzzer targets: clang, ASan + UBSan, the library compiled in.
FUZZ_CC ?= clang
FUZZ_LIBFLAGS := -std=c17 -O1 -g -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
FUZZ_FLAGS := -std=c17 -O1 -g -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
fuzz: $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)
FUZZ_OBJ := $(LIB_SRC:src/%.c=build-fuzz/obj/%.o)
build-fuzz/obj/%_avx2.o: src/%_avx2.c $(wildcard src/*.h include/*.h)
	@mkdir -p build-fuzz/obj
	$(FUZZ_CC) $(FUZZ_LIBFLAGS) $(AVX2_FLAGS) -c $< -o $@
build-fuzz/obj/%_avx512.o: src/%_avx512.c $(wildcard src/*.h include/*.h)
	@mkdir -p build-fuzz/obj
	$(FUZZ_CC) $(FUZZ_LIBFLAGS) $(AVX512_FLAGS) -c $< -o $@
build-fuzz/obj/%.o: src/%.c $(wildcard src/*.h include/*.h)
	@mkdir -p build-fuzz/obj
	$(FUZZ_CC) $(FUZZ_LIBFLAGS) -c $< -o $@
build-fuzz/%: fuzz/%.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_OBJ) $(LIBS)

format:
	clang-format -i src/*.c src/*.h include/*.h tests/*.c tests/*.h fuzz/*.c
check-format:
	clang-format --dry-run --Werror src/*.c src/*.h include/*.h tests/*.c tests/*.h fuzz/*.c

clean:
	rm -rf build build-san build-fuzz
