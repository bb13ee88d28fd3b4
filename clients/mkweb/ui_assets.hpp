// The UI files (ui/index.html, ui/app.js, ui/style.css), embedded in mkweb at
// build time by embed.cmake: no file to install, no CDN.
#pragma once

#include <string_view>

namespace mkweb {

struct Asset {
  std::string_view path;  // "/index.html", "/app.js", ...
  std::string_view content_type;
  std::string_view body;
};

// The embedded file served at `path`, or null.
const Asset* find_asset(std::string_view path);

}  // namespace mkweb
