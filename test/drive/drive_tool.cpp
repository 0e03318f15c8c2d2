// drive-tool: the drive module's fetch and config-drive build as a command, for process-level
// tests (kill -9 mid-download) and the benchmarks in bench/drive/.
//   drive-tool fetch --source URL|PATH --dir DIR --target NAME [--sha256 HEX] [--ca PEM]
//   drive-tool iso --out FILE [--layout configdrive|nocloud] [--userdata P] [--metadata P]
//                  [--networkdata P] [--hostname H] [--repeat N]
// Prints the result and the peak RSS (getrusage) on stdout; logs go to stderr.

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "drive/configdrive/config_drive.hpp"
#include "drive/image/image_cache.hpp"
#include "drive/progress.hpp"

namespace {

long peak_rss_kib() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

int usage() {
  std::fprintf(stderr,
               "usage: drive-tool fetch --source URL|PATH --dir DIR --target NAME [--sha256 HEX] "
               "[--ca PEM]\n"
               "       drive-tool iso --out FILE [--layout configdrive|nocloud] [--userdata P] "
               "[--metadata P] [--networkdata P] [--hostname H] [--repeat N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace berth::drive;
  using berth::Result;
  if (argc < 2)
    return usage();
  const std::string command = argv[1];
  std::map<std::string, std::string> options;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string name = argv[i];
    if (!name.starts_with("--"))
      return usage();
    options[name.substr(2)] = argv[i + 1];
  }
  auto log = spdlog::stderr_color_mt("drive");
  log->set_pattern("%H:%M:%S.%e %l %v");

  if (command == "fetch") {
    if (!options.contains("source") || !options.contains("dir") || !options.contains("target"))
      return usage();
    FetchParams params;
    params.source = options["source"];
    params.image_dir = options["dir"];
    params.target = options["target"];
    if (options.contains("sha256"))
      params.sha256 = options["sha256"];
    if (options.contains("ca"))
      params.ca_file = options["ca"];
    boost::asio::io_context io;
    int rc = 1;
    const auto started = std::chrono::steady_clock::now();
    boost::asio::co_spawn(
        io, fetch_image(params, log), [&](std::exception_ptr error, Result<CachedImage> result) {
          if (error) {
            std::fprintf(stderr, "exception\n");
            return;
          }
          if (!result) {
            std::fprintf(stderr, "error: %s\n", result.error().message.c_str());
            return;
          }
          std::printf("image %s format %s sha256 %s size %llu\n", result->path.c_str(),
                      std::string(image_format_name(result->format)).c_str(),
                      result->sha256.c_str(), static_cast<unsigned long long>(result->size));
          rc = 0;
        });
    io.run();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("seconds %.3f peak_rss_kib %ld\n", seconds, peak_rss_kib());
    return rc;
  }

  if (command == "iso") {
    if (!options.contains("out"))
      return usage();
    ConfigDriveParams params;
    params.layout =
        options["layout"] == "nocloud" ? DriveLayout::kNoCloud : DriveLayout::kConfigDrive;
    params.userdata = options.contains("userdata") ? options["userdata"] : "/nonexistent";
    params.metadata = options.contains("metadata") ? options["metadata"] : "/nonexistent";
    params.networkdata = options.contains("networkdata") ? options["networkdata"] : "/nonexistent";
    params.hostname = options.contains("hostname") ? options["hostname"] : "vm-0";
    params.iso = options["out"];
    const int repeat = options.contains("repeat") ? std::stoi(options["repeat"]) : 1;
    const auto started = std::chrono::steady_clock::now();
    // Each build is what the supervisor does per build: read, validate, build and write the file
    // atomically (removed first, so that every build writes, as genisoimage does).
    for (int i = 0; i < repeat; ++i) {
      std::remove(params.iso.c_str());
      auto written = build_config_drive(params, *log);
      if (!written) {
        std::fprintf(stderr, "error: %s\n", written.error().message.c_str());
        return 1;
      }
      if (i == repeat - 1)
        std::printf("iso %s label %s size %llu\n", params.iso.c_str(), written->label.c_str(),
                    static_cast<unsigned long long>(written->size));
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("builds %d seconds %.4f per_build_ms %.3f peak_rss_kib %ld\n", repeat, seconds,
                1000.0 * seconds / repeat, peak_rss_kib());
    return 0;
  }
  return usage();
}
