// The one exception hierarchy of mktl.
//
// Every error carries a Python-style type name ("ValueError", "KeyError", ...)
// so that an error raised in a daemon reaches any client, C++ or Python, as the
// same exception type with the same text.
#pragma once

#include <stdexcept>
#include <string>

namespace mktl {

class Error : public std::runtime_error {
 public:
  Error(std::string type, const std::string& text) : std::runtime_error(text), type_(std::move(type)) {}
  // Python exception class name, as sent in a REP's error.type.
  const std::string& type() const noexcept { return type_; }
  std::string text() const { return what(); }

 private:
  std::string type_;
};

struct ValueError : Error {
  explicit ValueError(const std::string& text) : Error("ValueError", text) {}
};
struct TypeError : Error {
  explicit TypeError(const std::string& text) : Error("TypeError", text) {}
};
// Python prints a KeyError's argument with repr(), quotes included, and that
// printed form is what travels as the REP's text; KeyError::python("no 'x'")
// gives the text a Python daemon would send ("\"no 'x'\"").
struct KeyError : Error {
  explicit KeyError(const std::string& text) : Error("KeyError", text) {}
  static KeyError python(const std::string& message);
};
struct RuntimeError : Error {
  explicit RuntimeError(const std::string& text) : Error("RuntimeError", text) {}
};
// No ACK (or no REP) arrived in time.
struct TimeoutError : Error {
  explicit TimeoutError(const std::string& text) : Error("TimeoutError", text) {}
};

// A bad catalog or configuration file: names the file, the JSON pointer of the
// offending field and what was expected. markd exits 78 (EX_CONFIG) on it.
class ConfigError : public Error {
 public:
  ConfigError(std::string file, std::string pointer, const std::string& problem)
      : Error("ValueError", format(file, pointer, problem)), file_(std::move(file)), pointer_(std::move(pointer)) {}
  const std::string& file() const noexcept { return file_; }
  const std::string& pointer() const noexcept { return pointer_; }

 private:
  static std::string format(const std::string& file, const std::string& pointer, const std::string& problem) {
    std::string out = file.empty() ? std::string("<catalog>") : file;
    if (!pointer.empty()) out += ": " + pointer;
    return out + ": " + problem;
  }
  std::string file_;
  std::string pointer_;
};

}  // namespace mktl
