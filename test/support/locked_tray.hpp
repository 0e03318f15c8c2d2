#pragma once
// Test support: user-data that makes the test guest hold its CD tray locked, the way a stock
// Linux distribution does (a Debian cloud image, for one). Linux locks the tray of an open CD-ROM
// unless /proc/sys/dev/cdrom/lock is 0; the test guest sets 0 at boot, Debian leaves the default
// 1. The script sets 1 and keeps /dev/sr0 open in the background, so the tray stays locked while
// the guest runs. Each time it runs (at boot, and after the guest has read a new config drive) it
// prints "tray-test content: VERSION" on the console: the proof that the guest read that drive.

#include <cstddef>
#include <string>

namespace berth::test {

inline std::string tray_holding_userdata(const std::string& version, std::size_t padding = 0) {
  // `padding` bytes of comment make a larger drive.
  return "#!/bin/sh\n# " + std::string(padding, 'p')
         + "\n"
           "if [ ! -e /run/tray-held ]; then\n"
           "  echo 1 > /proc/sys/dev/cdrom/lock\n"
           "  sleep 2147483647 < /dev/sr0 &\n"
           "  touch /run/tray-held\n"
           "fi\n"
           "echo \"tray-test content: "
         + version + "\"\n";
}

}  // namespace berth::test
