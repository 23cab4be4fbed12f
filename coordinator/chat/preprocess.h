// Lexer step 1 (see lexer.h): the whitespace options and generation-tag removal that jinja-js
// applies to the template text before scanning it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace strata::chat {

// Text with the original 1-based line of every byte.
struct Source {
  std::string text;
  std::vector<int> line;

  // Appends from.text[begin, end) with its lines.
  void Append(const Source& from, size_t begin, size_t end);
};

// Drops one trailing "\n", applies lstrip_blocks and trim_blocks, removes generation tags.
Source Preprocess(std::string_view template_text);

}  // namespace strata::chat
