#include "net/resolv_conf.hpp"

#include <charconv>
#include <sstream>

namespace berth::net {
namespace {

std::vector<std::string> words_of(std::string_view line) {
  std::vector<std::string> words;
  std::istringstream in{std::string(line)};
  for (std::string word; in >> word;)
    words.push_back(word);
  return words;
}

}  // namespace

ResolvConf parse_resolv_conf(std::string_view text) {
  ResolvConf conf;
  while (!text.empty()) {
    const auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (const auto comment = line.find_first_of("#;"); comment != std::string_view::npos)
      line = line.substr(0, comment);
    auto words = words_of(line);
    if (words.empty())
      continue;
    const std::string& key = words[0];
    if (key == "nameserver" && words.size() >= 2 && conf.nameservers.size() < 3) {
      boost::system::error_code ec;
      std::string server = words[1];
      if (auto percent = server.find('%'); percent != std::string::npos)
        server.resize(percent);
      auto address = boost::asio::ip::make_address(server, ec);
      if (!ec)
        conf.nameservers.push_back(address);
    } else if (key == "search" || key == "domain") {
      conf.search.assign(words.begin() + 1, words.end());
    } else if (key == "options") {
      for (std::size_t i = 1; i < words.size(); ++i) {
        std::string_view option = words[i];
        if (!option.starts_with("ndots:"))
          continue;
        option.remove_prefix(6);
        unsigned ndots = 0;
        auto [ptr, ec] = std::from_chars(option.data(), option.data() + option.size(), ndots);
        if (ec == std::errc{} && ptr == option.data() + option.size())
          conf.ndots = std::min(ndots, 15u);
      }
    }
  }
  return conf;
}

}  // namespace berth::net
