#pragma once
// Splitting and quoting words the way a POSIX shell does, without running one. Used for
// BERTH_QEMU_ARGS (split) and for logging command lines a user can paste (quote).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::qemu {

// Splits `text` into words: blanks separate words; '...' is literal; "..." is literal except that
// backslash escapes $ ` " \ and newline; a backslash outside quotes escapes the next character.
// Nothing is expanded ($VAR, globs and ~ stay as written). Returns nullopt for an unbalanced quote
// or a trailing backslash.
std::optional<std::vector<std::string>> split_shell_words(std::string_view text);

// Quotes `word` so that split_shell_words (and a shell) reads it back unchanged.
std::string quote_shell_word(std::string_view word);

// The whole argv, quoted and joined by spaces.
std::string quote_command(const std::vector<std::string>& argv);

}  // namespace berth::qemu
