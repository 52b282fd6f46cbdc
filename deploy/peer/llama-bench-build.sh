# Sourced: makes sure $bench is llama.cpp's llama-bench, the peer for generation speed, built
# from the llama.cpp that the llama-cpp-python sdist on PyPI vendors (pinned below by SHA-256),
# once per set of CPU flags into ~/.cache/vellum/llama_cpp_python-<version>/vendor/llama.cpp
# (about 5 minutes on 2 cores). Used by deploy/llama-bench.sh and deploy/ttft.sh.
version=0.3.36
sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
cache=$HOME/.cache/vellum
src=$cache/llama_cpp_python-$version
# Portable flags: never GGML_NATIVE (machines of this kind differ and a wrong guess dies on the
# first matmul); AVX2/FMA always; AVX-512, and its VNNI (`vpdpbusd`, which Vellum's own kernels
# use where the CPU has it: the peer gets the same instructions), only where this CPU has them;
# AVX-VNNI (the VEX form) and AMX never. One build folder per set of flags.
avx512=OFF vnni512=OFF
grep -qw avx512f /proc/cpuinfo && avx512=ON
[ $avx512 = ON ] && grep -qw avx512_vnni /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo && vnni512=ON
build=$src/vendor/llama.cpp/build-avx512-$avx512-vnni-$vnni512
bench=$build/bin/llama-bench
if [ ! -x "$bench" ]; then
  command -v cmake >/dev/null 2>&1 || {
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq cmake >/dev/null
  }
  mkdir -p "$cache"
  tarball=$cache/llama_cpp_python-$version.tar.gz
  if [ ! -f "$tarball" ]; then
    download_venv=$(mktemp -d)
    python3 -m venv "$download_venv"
    "$download_venv/bin/pip" install --quiet scikit-build-core
    "$download_venv/bin/pip" download --quiet --no-deps --no-binary :all: --no-build-isolation \
      -d "$cache" "llama-cpp-python==$version"
    rm -rf "$download_venv"
  fi
  echo "$sha256  $tarball" | sha256sum -c --quiet
  tar -xzf "$tarball" -C "$cache"
  cmake -S "$src/vendor/llama.cpp" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
    -DGGML_AVX512=$avx512 -DGGML_AVX512_VNNI=$vnni512 -DGGML_AVX_VNNI=OFF \
    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
    -DGGML_AMX_BF16=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF >/dev/null
  cmake --build "$build" --target llama-bench -j "$(nproc)" >/dev/null
fi
llama_cpp_flags="llama.cpp AVX-512 $avx512, AVX-512 VNNI $vnni512"

