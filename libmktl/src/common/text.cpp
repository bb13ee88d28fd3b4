#include "common/text.hpp"

#include <exception>

namespace mktl::detail {

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string ascii_upper(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

std::string shown(const Json& value) {
  std::string text;
  try {
    text = json::dump(value);
  } catch (const std::exception&) {  // text that is not UTF-8
    text = value.type_name();
  }
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

}  // namespace mktl::detail
