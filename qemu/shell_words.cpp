#include "qemu/shell_words.hpp"

#include <algorithm>
#include <cctype>
#include <utility>

namespace berth::qemu {

std::optional<std::vector<std::string>> split_shell_words(std::string_view text) {
  enum class State { kBlank, kWord, kSingle, kDouble };
  std::vector<std::string> words;
  std::string word;
  State state = State::kBlank;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    switch (state) {
      case State::kBlank:
      case State::kWord:
        if (c == ' ' || c == '\t' || c == '\n') {
          if (state == State::kWord)
            words.push_back(std::exchange(word, {}));
          state = State::kBlank;
        } else if (c == '\'') {
          state = State::kSingle;
        } else if (c == '"') {
          state = State::kDouble;
        } else if (c == '\\') {
          if (++i == text.size())
            return std::nullopt;
          if (text[i] != '\n')
            word += text[i];  // backslash-newline is a line continuation
          state = State::kWord;
        } else {
          word += c;
          state = State::kWord;
        }
        break;
      case State::kSingle:
        if (c == '\'')
          state = State::kWord;
        else
          word += c;
        break;
      case State::kDouble:
        if (c == '"') {
          state = State::kWord;
        } else if (c == '\\' && i + 1 < text.size()
                   && std::string_view("$`\"\\\n").find(text[i + 1]) != std::string_view::npos) {
          if (text[++i] != '\n')
            word += text[i];
        } else {
          word += c;
        }
        break;
    }
  }
  if (state == State::kSingle || state == State::kDouble)
    return std::nullopt;
  if (state == State::kWord)
    words.push_back(std::move(word));
  return words;
}

std::string quote_shell_word(std::string_view word) {
  const bool safe = !word.empty() && std::all_of(word.begin(), word.end(), [](unsigned char c) {
    return std::isalnum(c) != 0
           || std::string_view("@%+=:,./_-").find(static_cast<char>(c)) != std::string_view::npos;
  });
  if (safe)
    return std::string(word);
  std::string out = "'";
  for (char c : word) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string quote_command(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& arg : argv) {
    if (!out.empty())
      out += ' ';
    out += quote_shell_word(arg);
  }
  return out;
}

}  // namespace berth::qemu
