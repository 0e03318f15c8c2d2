#include "qemu/shell_words.hpp"

#include <catch2/catch.hpp>

using berth::qemu::quote_shell_word;
using berth::qemu::split_shell_words;
using Words = std::vector<std::string>;

TEST_CASE("split_shell_words reads words like a POSIX shell without expanding", "[shell]") {
  CHECK(split_shell_words("") == Words{});
  CHECK(split_shell_words("  \t ") == Words{});
  CHECK(split_shell_words("-m 512 -smp 2") == Words{"-m", "512", "-smp", "2"});
  CHECK(split_shell_words("-append 'console=ttyS0 quiet'")
        == Words{"-append", "console=ttyS0 quiet"});
  CHECK(split_shell_words(R"(a"b c"d)") == Words{"ab cd"});
  CHECK(split_shell_words(R"("x\"y" 'it'\''s')") == Words{"x\"y", "it's"});
  CHECK(split_shell_words(R"("\a")") == Words{"\\a"});  // backslash stays before ordinary chars
  CHECK(split_shell_words(R"(a\ b)") == Words{"a b"});
  CHECK(split_shell_words("$HOME *.img ~") == Words{"$HOME", "*.img", "~"});
  CHECK(split_shell_words("''") == Words{""});
  CHECK(split_shell_words("a\\\nb") == Words{"ab"});
  CHECK_FALSE(split_shell_words("'open"));
  CHECK_FALSE(split_shell_words("\"open"));
  CHECK_FALSE(split_shell_words("trailing\\"));
}

TEST_CASE("quote_shell_word round-trips through split_shell_words", "[shell]") {
  for (std::string word : {"plain", "", "two words", "it's", "$HOME", "a\"b", "tab\there", "\\"}) {
    CHECK(split_shell_words(quote_shell_word(word)) == Words{word});
  }
  CHECK(quote_shell_word("file=/x/y.qcow2,if=virtio") == "file=/x/y.qcow2,if=virtio");
}
