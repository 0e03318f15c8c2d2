// Stands in for libFuzzer when the fuzz targets are not built with it (test/CMakeLists.txt,
// BERTH_FUZZ): runs the target once on every file of the corpus directories given as arguments.
// Options starting with '-' are ignored, except --reason=<why>, which it prints: a passing replay
// must not read as fuzzing.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  constexpr std::string_view kReason = "--reason=";
  std::size_t runs = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with(kReason))
      std::printf("SEED REPLAY ONLY, NOT FUZZING: %s\n", argv[i] + kReason.size());
    if (arg.starts_with("-") || !std::filesystem::is_directory(arg))
      continue;
    for (const auto& entry : std::filesystem::directory_iterator(arg)) {
      std::ifstream in(entry.path(), std::ios::binary);
      const std::vector<std::uint8_t> bytes(std::istreambuf_iterator<char>(in), {});
      LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      ++runs;
    }
  }
  std::printf("replayed %zu inputs\n", runs);
  return runs > 0 ? 0 : 1;
}
