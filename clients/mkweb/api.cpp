#include "api.hpp"

#include "ui_assets.hpp"

#include <mktl/error.hpp>
#include <mktl/format.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace mkweb {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

ApiResponse json_response(const mktl::Json& body, int status = 200) {
  ApiResponse response;
  response.status = status;
  response.body = mktl::json::dump(body);
  return response;
}

ApiResponse failure_response(const std::exception& e) {
  if (auto* error = dynamic_cast<const mktl::Error*>(&e))
    return error_response(error_status(error->type()), error->type(), error->text());
  return error_response(502, "RuntimeError", e.what());
}

// The path's part before '?', and whether the query has refresh=1 (or true).
struct Target {
  std::string path;
  bool refresh = false;
};

Target split_target(const std::string& target) {
  Target out;
  auto q = target.find('?');
  out.path = target.substr(0, q);
  if (q != std::string::npos) {
    std::string query = "&" + target.substr(q + 1) + "&";
    out.refresh = query.find("&refresh=1&") != std::string::npos || query.find("&refresh=true&") != std::string::npos;
  }
  return out;
}

// Constant-time comparison, so the token does not leak through timing.
bool same_token(const std::string& given, const std::string& token) {
  unsigned char diff = given.size() == token.size() ? 0 : 1;
  for (std::size_t i = 0; i < given.size(); ++i)
    diff |= static_cast<unsigned char>(given[i] ^ token[i % std::max<std::size_t>(token.size(), 1)]);
  return diff == 0 && !token.empty();
}

// A SET value from the browser: strings read as `mk set` reads text (the
// item's formatted form first, then JSON, else the text itself) unless the
// item is a string; other JSON values go as they are.
mktl::Json set_value(const mktl::Json& description, const mktl::Json& value) {
  mktl::ItemType type = mktl::ItemType::typeless;
  try {
    type = mktl::item_type(description);
  } catch (const std::exception&) {
  }
  if (type == mktl::ItemType::bulk) throw mktl::TypeError("mkweb cannot set bulk items");
  if (!value.is_string() || type == mktl::ItemType::string || type == mktl::ItemType::typeless) return value;
  const std::string text = value.get<std::string>();
  try {
    return mktl::parse_formatted(description, text);
  } catch (const std::exception&) {
  }
  try {
    return mktl::json::parse(text);
  } catch (const std::exception&) {
    return value;
  }
}

}  // namespace

int error_status(const std::string& type) {
  if (type == "KeyError") return 404;
  if (type == "ValueError" || type == "TypeError") return 422;
  if (type == "PermissionError") return 403;
  if (type == "TimeoutError") return 504;
  return 502;
}

ApiResponse error_response(int status, const std::string& type, const std::string& text) {
  return json_response({{"error", {{"type", type}, {"text", text}}}}, status);
}

std::string read_token_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) throw mktl::Error("FileNotFoundError", "no token file " + path);
    throw mktl::RuntimeError("cannot read token file " + path + ": " + std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw mktl::Error("PermissionError", "token file " + path + " has mode " + mode +
                                             ": group and others must not have access to it; run chmod 600 " + path);
  }
  std::ifstream in(path);
  std::string token;
  if (!in || !std::getline(in, token)) throw mktl::ValueError("token file " + path + " is empty");
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  auto first = token.find_first_not_of(" \t");
  token = first == std::string::npos ? std::string() : token.substr(first);
  if (token.empty()) throw mktl::ValueError("token file " + path + " is empty");
  return token;
}

void Api::blocking(std::function<ApiResponse()> work, std::function<void(ApiResponse)> done) {
  gateway_.run_blocking([this, work = std::move(work), done = std::move(done)]() mutable {
    ApiResponse response;
    try {
      response = work();
    } catch (const std::exception& e) {
      response = failure_response(e);
    }
    gateway_.run_io([done = std::move(done), response = std::move(response)]() mutable { done(std::move(response)); });
  });
}

void Api::handle(ApiRequest request, std::function<void(ApiResponse)> done) {
  Target target = split_target(request.target);
  const std::string& path = target.path;
  const bool get = request.method == "GET";

  if (path == "/api/stores" || path.rfind("/api/stores/", 0) == 0 || path.rfind("/api/", 0) != 0) {
    if (!get) {
      ApiResponse r = error_response(405, "ValueError", request.method + " is not allowed on " + path);
      r.headers.emplace_back("Allow", "GET");
      return done(std::move(r));
    }
  }
  if (path == "/healthz") return done(json_response({{"ok", true}}));
  if (path == "/favicon.ico") {  // browsers ask; there is none
    ApiResponse r;
    r.status = 204;
    r.content_type = "image/x-icon";
    return done(std::move(r));
  }
  if (path == "/api/stores") {
    return blocking([this] { return json_response({{"stores", gateway_.stores()}}); }, std::move(done));
  }
  if (path.rfind("/api/stores/", 0) == 0) {
    std::string store = lower(path.substr(12));
    if (store.empty() || store.find('/') != std::string::npos)
      return done(error_response(404, "KeyError", "no such route: " + path));
    return blocking([this, store] { return json_response({{"store", store}, {"items", gateway_.catalog(store)}}); },
                    std::move(done));
  }
  if (path.rfind("/api/items/", 0) == 0) {
    std::string rest = path.substr(11);
    bool bulk = false;
    if (rest.size() > 5 && rest.compare(rest.size() - 5, 5, "/bulk") == 0) {
      bulk = true;
      rest.resize(rest.size() - 5);
    }
    std::string full_key = lower(rest);
    if (full_key.empty() || full_key.find('/') != std::string::npos)
      return done(error_response(404, "KeyError", "no such route: " + path));
    if (bulk) {
      if (!get) return done(error_response(405, "ValueError", request.method + " is not allowed on " + path));
      return item_bulk(full_key, std::move(done));
    }
    if (get) return item_get(full_key, target.refresh, std::move(done));
    if (request.method == "POST") return item_set(request, full_key, std::move(done));
    ApiResponse r = error_response(405, "ValueError", request.method + " is not allowed on " + path);
    r.headers.emplace_back("Allow", "GET, POST");
    return done(std::move(r));
  }
  if (path.rfind("/api/", 0) != 0) {
    std::string file = path == "/" || path == "/index.html" ? "/index.html" : path;
    if (const Asset* asset = find_asset(file)) {
      ApiResponse r;
      r.content_type = std::string(asset->content_type);
      r.body = std::string(asset->body);
      r.headers.emplace_back("Cache-Control", "no-cache");
      return done(std::move(r));
    }
  }
  done(error_response(404, "KeyError", "no such route: " + path));
}

void Api::item_get(const std::string& full_key, bool refresh, std::function<void(ApiResponse)> done) {
  blocking(
      [this, full_key, refresh] {
        mktl::Json description = gateway_.description(full_key);
        mktl::Reading reading = gateway_.client().get(full_key, refresh);
        mktl::Json body = Gateway::value_fields(full_key, description, reading, 0);
        body.erase("type");
        return json_response(body);
      },
      std::move(done));
}

void Api::item_bulk(const std::string& full_key, std::function<void(ApiResponse)> done) {
  blocking(
      [this, full_key] {
        gateway_.description(full_key);  // 404 for an unknown key
        BulkFrame frame = gateway_.bulk(full_key);
        ApiResponse r;
        r.content_type = "application/octet-stream";
        auto bytes = frame.bulk.bytes();
        r.body.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        std::string shape;
        for (auto d : frame.bulk.shape()) shape += (shape.empty() ? "" : ",") + std::to_string(d);
        r.headers.emplace_back("X-Shape", shape);
        r.headers.emplace_back("X-Dtype", frame.bulk.dtype());
        r.headers.emplace_back("X-Time", std::to_string(frame.time));
        r.headers.emplace_back("Cache-Control", "no-store");
        return r;
      },
      std::move(done));
}

std::optional<ApiResponse> Api::check_token(const ApiRequest& request) const {
  if (!options_.allow_set)
    return error_response(403, "PermissionError", "SET through the web is off (start mkweb with --allow-set)");
  const std::string prefix = "Bearer ";
  if (request.authorization.empty())
    return error_response(401, "PermissionError", "a token is needed: send Authorization: Bearer TOKEN");
  if (request.authorization.rfind(prefix, 0) != 0 || !same_token(request.authorization.substr(prefix.size()), options_.token))
    return error_response(401, "PermissionError", "wrong token");
  return std::nullopt;
}

void Api::item_set(const ApiRequest& request, const std::string& full_key, std::function<void(ApiResponse)> done) {
  if (auto refused = check_token(request)) return done(std::move(*refused));
  mktl::Json body;
  try {
    body = mktl::json::parse(request.body);
  } catch (const std::exception& e) {
    return done(error_response(400, "ValueError", std::string("the body is not JSON: ") + e.what()));
  }
  if (!body.is_object() || !body.contains("value"))
    return done(error_response(400, "ValueError", "the body must be a JSON object {\"value\": V}"));
  mktl::Json value = body["value"];
  blocking(
      [this, full_key, value] {
        mktl::Json description = gateway_.description(full_key);  // 404 for an unknown store or key
        try {
          gateway_.client().set(full_key, mktl::Reading(set_value(description, value)));
        } catch (const mktl::Error& e) {
          // The key exists: a KeyError now is about the value (an enumerator).
          int status = e.type() == "KeyError" ? 422 : error_status(e.type());
          return error_response(status, e.type(), e.text());
        }
        return json_response({{"item", full_key}, {"ok", true}});
      },
      std::move(done));
}

}  // namespace mkweb
