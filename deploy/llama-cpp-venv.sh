# Sourced: makes sure $venv (default ~/.cache/vellum/llama-cpp-venv, or VELLUM_LLAMA_CPP_VENV)
# holds llama-cpp-python $llama_cpp_version with its server, building it from PyPI's sdist when
# it does not (about 10 minutes on 2 cores; later runs take seconds). A venv without a working
# llama_cpp of this version (another version, or an interrupted build) is built again.
llama_cpp_version=0.3.36
venv=${VELLUM_LLAMA_CPP_VENV:-$HOME/.cache/vellum/llama-cpp-venv}
if ! "$venv/bin/python" -c "import llama_cpp, llama_cpp.server, sys; sys.exit(llama_cpp.__version__ != '$llama_cpp_version')" >/dev/null 2>&1; then
  build_started=$(date +%s)
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  missing=()
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)
  python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  # Never let llama.cpp tune for the build machine (GGML_NATIVE): machines of this kind differ,
  # and a binary with the wrong instructions dies on its first matmul. AVX2/FMA always (Vellum
  # needs them too); AVX-512 only where this CPU has it; AVX-VNNI and AMX never (they fault on
  # some of these VMs). No multimodal library (LLAVA_BUILD, llama.cpp's tools/mtmd: 54 more C++
  # files): a text model is all the tests and the benchmark serve, and the server imports it only
  # for image chat formats.
  avx512=OFF
  grep -qw avx512f /proc/cpuinfo && avx512=ON
  export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=$avx512 -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
-DLLAVA_BUILD=OFF"
  echo "building llama-cpp-python $llama_cpp_version into $venv (CMAKE_ARGS=$CMAKE_ARGS)"
  "$venv/bin/pip" install --quiet "llama-cpp-python[server]==$llama_cpp_version"
  echo "llama-cpp-python built in $(( $(date +%s) - build_started )) s"
fi
