#!/usr/bin/env bash
# packaging/build-deb.sh OUTDIR: the Debian package of this tree (committed
# and uncommitted files alike), built with dpkg-buildpackage in a copy under
# OUTDIR so the tree gets no debian/ferromq/ or ../*.deb. Prints the .deb.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
jobs=${JOBS:-$(nproc)}
version=$(dpkg-parsechangelog -l "$root/debian/changelog" -S Version)
src="$out/src/ferromq-${version%-*}"
# The package's version is the program's (project() in CMakeLists.txt).
cmake_version=$(sed -n 's/^project(ferromq VERSION \([^ ]*\) .*/\1/p' "$root/CMakeLists.txt")
[ "${version%-*}" = "$cmake_version" ] ||
	{ echo "build-deb: debian/changelog says $version, CMakeLists.txt $cmake_version" >&2; exit 1; }

rm -rf "$out/src" "$out"/ferromq_* "$out"/ferromq-dbgsym_*
mkdir -p "$src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} find {} -maxdepth 0 -type f -print0 \
	| tar --null -T - -cf -) | tar -xf - -C "$src"
(cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$jobs" dpkg-buildpackage -b -us -uc >"$out/build.log" 2>&1) || {
	tail -40 "$out/build.log" >&2
	echo "build-deb: dpkg-buildpackage failed; the whole log: $out/build.log" >&2
	exit 1
}
mv "$out/src"/*.deb "$out/src"/*.buildinfo "$out/src"/*.changes "$out"/ 2>/dev/null || true
ls "$out"/ferromq_*.deb
