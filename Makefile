# ferromq — the two commands of the quick start, and the rest.
#   make run    build and start the broker on 127.0.0.1:1883, data in ./data
#   make test   build with sanitizers and run every test (last line: ctest's summary)
#   make build  optimized binaries in build/
#   make bench  ferromq against Debian's mosquitto, writes BENCHMARKS.md
#   make fuzz   run every fuzzer for FUZZ_SECONDS (default 300) each
#   make test-durability   the kill -9 harness with 100 cycles

DEB_PACKAGES := build-essential cmake pkg-config clang libclang-rt-14-dev libuv1-dev libsqlite3-dev \
	python3 python3-pytest python3-paho-mqtt mosquitto mosquitto-clients node-mqtt nodejs \
	libssl-dev openssl libwslay-dev chromium libmodbus-dev libsystemd-dev
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 300
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps build run test test-build test-durability fuzz bench clean

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j $(JOBS)

run: build
	mkdir -p data
	./build/ferromq -c ferromq.conf

# Sanitizer build (clang: ASan + UBSan, and libFuzzer for the fuzz targets).
test-build: deps
	CC=clang cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DFM_SANITIZE=ON -DFM_FUZZ=ON >/dev/null
	cmake --build build-test -j $(JOBS)

test: test-build
	cd build-test && FUZZ_SECONDS=10 ctest --output-on-failure -j $(JOBS)

test-durability: test-build
	cd build-test && KILL_CYCLES=100 ctest --output-on-failure -R '^durability\.'

fuzz: test-build
	cd build-test && FUZZ_SECONDS=$(FUZZ_SECONDS) ctest --output-on-failure -R '^fuzz\.'

bench: build
	FERROMQ_BIN=build/ferromq FERROMQ_BENCH=build/ferromq-bench bash bench/run.sh

clean:
	rm -rf build build-test
