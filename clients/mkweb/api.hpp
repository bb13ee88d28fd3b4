// mkweb::Api: the HTTP routes of mkweb (JSON API, UI files, health), apart
// from the HTTP library: a request comes in as an ApiRequest, the answer
// goes out as an ApiResponse, so the routes and their status mapping are
// plain code.
//
// Routes (docs/mkweb.md):
//   GET  /api/stores                      {"stores": [...]}
//   GET  /api/stores/STORE                {"store": S, "items": {KEY: description}}
//   GET  /api/items/STORE.KEY[?refresh=1] {"item", "value", "formatted", "units", "time"}
//   GET  /api/items/STORE.KEY/bulk        raw bytes of a bulk item (X-Shape, X-Dtype)
//   POST /api/items/STORE.KEY             {"value": V} with Authorization: Bearer TOKEN
//   GET  /, /app.js, /style.css, /healthz
// Errors: {"error": {"type", "text"}} with 400, 401, 403, 404, 405, 413, 422,
// 502 or 504 (error_status()).
//
// Threading promise: handle() is called on the I/O thread and returns at
// once; `done` runs later on the I/O thread (requests that reach a daemon run
// on the gateway's worker pool meanwhile).
#pragma once

#include "gateway.hpp"

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mkweb {

struct ApiRequest {
  std::string method;         // "GET", "POST", ...
  std::string target;         // path and query, as sent
  std::string authorization;  // the Authorization header ("" if none)
  std::string body;
};

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

struct ApiOptions {
  bool allow_set = false;
  std::string token;  // required with allow_set (main checks it is set)
};

// The HTTP status for an error type from a daemon or the gateway.
int error_status(const std::string& type);
ApiResponse error_response(int status, const std::string& type, const std::string& text);

// The token from a file that only its owner may read (mode 0600, like key
// files): its first line, trimmed. Throws mktl::Error (PermissionError for a
// file group or others may read, FileNotFoundError, ValueError when empty).
std::string read_token_file(const std::string& path);

class Api {
 public:
  Api(Gateway& gateway, ApiOptions options) : gateway_(gateway), options_(std::move(options)) {}
  void handle(ApiRequest request, std::function<void(ApiResponse)> done);

 private:
  void item_get(const std::string& full_key, bool refresh, std::function<void(ApiResponse)> done);
  void item_bulk(const std::string& full_key, std::function<void(ApiResponse)> done);
  void item_set(const ApiRequest& request, const std::string& full_key, std::function<void(ApiResponse)> done);
  std::optional<ApiResponse> check_token(const ApiRequest& request) const;
  // Runs `work` on the worker pool, turning what it throws into an error
  // response; `done` gets the result on the I/O thread.
  void blocking(std::function<ApiResponse()> work, std::function<void(ApiResponse)> done);

  Gateway& gateway_;
  ApiOptions options_;
};

}  // namespace mkweb
