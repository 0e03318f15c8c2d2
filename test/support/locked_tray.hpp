#pragma once
// Test support: user-data that makes the test guest hold its CD tray locked, the way a stock
// Linux distribution does (a Debian cloud image, for one). Linux locks the tray of an open CD-ROM
// unless /proc/sys/dev/cdrom/lock is 0; the test guest sets 0 at boot, Debian leaves the default
// 1. The script sets 1 and keeps /dev/sr0 in use for as long as the guest runs, either open in a
// background process or mounted (at /mnt/held), so the tray stays locked. Each time it runs (at
// boot, and after the guest has read a new config drive) it prints "tray-test content: VERSION"
// on the console: the proof that the guest read that drive.

#include <cstddef>
#include <string>

namespace berth::test {

enum class TrayHolder { kOpenFile, kMount };

inline std::string tray_holding_userdata(const std::string& version, std::size_t padding = 0,
                                         TrayHolder holder = TrayHolder::kOpenFile) {
  const std::string hold =
      holder == TrayHolder::kOpenFile
          ? "  sleep 2147483647 < /dev/sr0 &\n"
          : "  mkdir -p /mnt/held && mount -t iso9660 -o ro /dev/sr0 /mnt/held\n";
  // `padding` bytes of comment make a larger drive.
  return "#!/bin/sh\n# " + std::string(padding, 'p')
         + "\n"
           "if [ ! -e /run/tray-held ]; then\n"
           "  echo 1 > /proc/sys/dev/cdrom/lock\n"
         + hold
         + "  touch /run/tray-held\n"
           "fi\n"
           "echo \"tray-test content: "
         + version + "\"\n";
}

}  // namespace berth::test
