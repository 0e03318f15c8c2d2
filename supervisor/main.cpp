// berth: the container's entrypoint. `berth` runs the VM; `berth config` prints the effective
// configuration; `berth --help` documents every variable; `berth --version`.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <string_view>

#include "supervisor/config.hpp"
#include "supervisor/exit_code.hpp"
#include "supervisor/logging.hpp"
#include "supervisor/supervisor.hpp"

namespace {

using namespace berth;

void print_help() {
  std::string text = fmt::format(
      "berth {} - run a virtual machine as a Kubernetes pod\n\n"
      "Usage:\n"
      "  berth            run the VM (the container's entrypoint)\n"
      "  berth config     validate the environment and print the effective configuration\n"
      "  berth --help     this text\n"
      "  berth --version  the version\n\n"
      "Environment:\n",
      BERTH_VERSION);
  for (const auto& v : variable_docs()) {
    text += fmt::format("  {:<23}{}\n", v.name, v.help);
    text += fmt::format("  {:<23}  form: {}; default: {}\n", "", v.form,
                        v.default_value.empty() ? "unset" : v.default_value);
  }
  text +=
      "\nExit codes:\n"
      "  0 guest powered off or stopped cleanly   1 internal error   2 usage   3 configuration\n"
      "  4 image   5 pet disk   6 config drive   7 network   8 QEMU failed   9 guest crashed\n"
      "  10 guest ignored power-down (QEMU quit after BERTH_SHUTDOWN_TIMEOUT)\n"
      "  11 swtpm (VM_TPM) failed to start or died while the VM ran   128+n signal n\n";
  std::fputs(text.c_str(), stdout);
}

// Logging comes up before the configuration is known to be valid, so that configuration errors
// are logged in the requested format; an invalid format falls back to text.
void init_logging_early(const EnvLookup& env) {
  const auto format = env("BERTH_LOG_FORMAT");
  init_logging(
      format && (*format == "json" || *format == "JSON") ? LogFormat::kJson : LogFormat::kText,
      LogLevel::kInfo);
}

int report_config_errors(const std::vector<ConfigError>& errors) {
  for (const auto& error : errors)
    spdlog::error("{}", error.message);
  spdlog::error("invalid configuration ({} problem{}); see `berth --help` for every variable",
                errors.size(), errors.size() == 1 ? "" : "s");
  return to_int(ExitCode::kConfig);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view command = argc > 1 ? argv[1] : "";
  if (argc > 2
      || (argc == 2 && command != "config" && command != "--help" && command != "-h"
          && command != "--version")) {
    std::fprintf(stderr, "berth: unknown argument \"%s\"; try `berth --help`\n",
                 argv[argc > 2 ? 2 : 1]);
    return to_int(ExitCode::kUsage);
  }
  if (command == "--help" || command == "-h") {
    print_help();
    return 0;
  }
  if (command == "--version") {
    std::printf("berth %s\n", BERTH_VERSION);
    return 0;
  }

  const EnvLookup env = process_env();
  init_logging_early(env);
  auto result = parse_config(env);
  if (!result.config)
    return report_config_errors(result.errors);
  init_logging(result.config->log_format, result.config->log_level);

  if (command == "config") {
    std::fputs(describe_config(*result.config, env).c_str(), stdout);
    return 0;
  }
  if (result.config->vm_tpm && !find_program("swtpm"))
    return report_config_errors(
        {{"VM_TPM", "yes",
          fmt::format("VM_TPM: \"yes\" needs swtpm, the TPM 2.0 emulator, which is not in PATH "
                      "({}); expected it installed (Debian's swtpm package), or VM_TPM=no",
                      env("PATH").value_or(""))}});

  try {
    boost::asio::io_context io(1);
    Supervisor supervisor(std::move(*result.config), io);
    return supervisor.run();
  } catch (const std::exception& e) {
    spdlog::critical("internal error: {}", e.what());
    return to_int(ExitCode::kInternal);
  }
}
