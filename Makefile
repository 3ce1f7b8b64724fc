# ferromq — the two commands of the quick start, and the rest.
#   make run    build and start the broker on 127.0.0.1:1883, data in ./data
#   make test   build with sanitizers and run every test (last line: ctest's summary)
#   make build  optimized binaries in build/
#   make bench  ferromq against Debian's mosquitto, writes BENCHMARKS.md
#   make fuzz   run every fuzzer for FUZZ_SECONDS (default 300) each
#   make test-durability   the kill -9 harness with 100 cycles
#   make test-failover     FAILOVER_CYCLES (default 50) kill -9 cycles of a 3-node cluster's leader
#                 under QoS 1/2 load: fail-over times, nothing acknowledged lost
#   make test-partition    partitions of a 3-node cluster through a fault proxy, then real ones
#                 with network namespaces (those need root: skipped without)
#   make install  binaries, man pages, configuration and systemd unit under PREFIX (default
#                 /usr/local), staged under DESTDIR if set
#   make deb      the Debian package, in build-deb/
#   make test-package   only the package test of `make test`: build, install into a scratch
#                 root, verify the unit, upgrade from the previous release (needs root)

DEB_PACKAGES := build-essential cmake pkg-config clang libclang-rt-14-dev liblz4-dev libuv1-dev libsqlite3-dev \
	python3 python3-pytest python3-paho-mqtt mosquitto mosquitto-clients node-mqtt nodejs \
	libssl-dev openssl libwslay-dev chromium libmodbus-dev \
	libsystemd-dev systemd debhelper dpkg-dev help2man mmdebstrap strace iproute2 \
	protobuf-c-compiler libprotobuf-c-dev protobuf-compiler python3-protobuf
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 300
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PREFIX ?= /usr/local

.PHONY: deps build run test test-build test-durability test-failover test-partition test-package install deb fuzz bench clean

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@bash packaging/install-libraft.sh

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j $(JOBS)

# The configuration and the unit name PREFIX's paths (/etc and /var/lib for /usr).
install: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build build -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install build

deb: deps
	JOBS=$(JOBS) bash packaging/build-deb.sh build-deb

run: build
	mkdir -p data
	./build/ferromq -c ferromq.conf

# Sanitizer build (clang: ASan + UBSan, and libFuzzer for the fuzz targets).
test-build: deps
	CC=clang cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DFM_SANITIZE=ON -DFM_FUZZ=ON >/dev/null
	cmake --build build-test -j $(JOBS)

test: test-build
	cd build-test && FUZZ_SECONDS=10 ctest --output-on-failure -j $(JOBS)

test-package: deps
	bash tests/package/run.sh build-pkg

test-durability: test-build
	cd build-test && KILL_CYCLES=100 ctest --output-on-failure -R '^durability\.'

FAILOVER_CYCLES ?= 50
test-failover: test-build
	FERROMQ_BIN=$(CURDIR)/build-test/ferromq /usr/bin/python3 tests/ha/failover_cycles.py $(FAILOVER_CYCLES)

test-partition: test-build
	FERROMQ_BIN=$(CURDIR)/build-test/ferromq FM_CLUSTER_NODE=$(CURDIR)/build-test/fm-cluster-node PYTHONDONTWRITEBYTECODE=1 \
		/usr/bin/python3 -m pytest -q -rs -p no:cacheprovider tests/ha/test_partition.py tests/ha/test_faultproxy.py \
		tests/ha/test_partition_netns.py

fuzz: test-build
	cd build-test && FUZZ_SECONDS=$(FUZZ_SECONDS) ctest --output-on-failure -R '^fuzz\.'

bench: build
	FERROMQ_BIN=build/ferromq FERROMQ_BENCH=build/ferromq-bench bash bench/run.sh

clean:
	rm -rf build build-test build-deb build-pkg
