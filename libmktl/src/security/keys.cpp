// CURVE key pairs and key files (mktl/security.hpp).
#include "security/keys.hpp"

#include <mktl/catalog.hpp>
#include <mktl/error.hpp>
#include <mktl/security.hpp>

#include <zmq.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace mktl {

namespace fs = std::filesystem;

namespace {

std::string home_or_default(const std::string& home) { return home.empty() ? mktl_home() : home; }

// A name stands for a file under $MKTL_HOME/keys; anything with a '/' is a path.
bool is_path(const std::string& s) { return s.find('/') != std::string::npos; }

std::string strip(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// The first line of a key file that is neither empty nor a '#' comment.
std::string key_line(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("FileNotFoundError", "cannot read key file " + path + ": " + std::strerror(errno));
  std::string line;
  while (std::getline(in, line)) {
    line = strip(line);
    if (!line.empty() && line[0] != '#') return line;
  }
  throw ValueError("key file " + path + " holds no key (expected a 40-character Z85 key; make one with mk keygen)");
}

void write_file(const std::string& path, const std::string& text, mode_t mode, bool overwrite) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (overwrite ? O_TRUNC : O_EXCL);
  int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) {
    if (errno == EEXIST)
      throw Error("FileExistsError", path + " exists already; remove it first (or mk keygen --force) to replace the key");
    throw RuntimeError("cannot write " + path + ": " + std::strerror(errno));
  }
  // The mode of an existing file (overwrite) or one cut by the umask is set exactly.
  bool ok = ::fchmod(fd, mode) == 0;
  std::size_t done = 0;
  while (ok && done < text.size()) {
    auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ok = false;
    else done += static_cast<std::size_t>(n);
  }
  int saved = errno;
  if (::close(fd) != 0) ok = false;
  if (!ok) throw RuntimeError("cannot write " + path + ": " + std::strerror(saved ? saved : errno));
}

}  // namespace

bool curve_available() { return zmq_has("curve") != 0; }

namespace security {

bool is_z85_key(std::string_view text) {
  if (text.size() != 40) return false;
  std::uint8_t binary[32];
  std::string copy(text);
  return zmq_z85_decode(binary, copy.c_str()) != nullptr;
}

std::string binary_key(std::string_view z85) {
  std::uint8_t binary[32];
  std::string copy(z85);
  if (copy.size() != 40 || zmq_z85_decode(binary, copy.c_str()) == nullptr)
    throw ValueError("not a Z85 CURVE key: '" + copy + "'");
  return std::string(reinterpret_cast<const char*>(binary), sizeof binary);
}

std::string z85_key(std::string_view binary) {
  if (binary.size() != 32) return {};
  char text[41];
  if (zmq_z85_encode(text, reinterpret_cast<const std::uint8_t*>(binary.data()), 32) == nullptr) return {};
  return std::string(text, 40);
}

}  // namespace security

std::string secret_key_path(const std::string& name_or_path, const std::string& home) {
  if (name_or_path.empty()) throw ValueError("empty key name");
  if (is_path(name_or_path)) return name_or_path;
  return (fs::path(home_or_default(home)) / "keys" / (name_or_path + ".key")).string();
}

KeyPair KeyPair::generate() {
  if (!curve_available()) throw RuntimeError("this ZeroMQ library has no CURVE support (built without libsodium)");
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0) throw RuntimeError(std::string("zmq_curve_keypair: ") + zmq_strerror(zmq_errno()));
  return KeyPair{std::string(pub, 40), std::string(sec, 40)};
}

KeyPair KeyPair::load(const std::string& name_or_path, const std::string& home) {
  std::string path = secret_key_path(name_or_path, home);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      throw Error("FileNotFoundError", "no secret key file " + path + " (make one with: mk keygen " +
                                            (is_path(name_or_path) ? std::string("NAME") : name_or_path) + ")");
    throw RuntimeError("cannot read secret key file " + path + ": " + std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw Error("PermissionError", "secret key file " + path + " has mode " + mode +
                                       ": group and others must not have access to it; run chmod 600 " + path);
  }
  std::string secret = key_line(path);
  if (!security::is_z85_key(secret))
    throw ValueError("secret key file " + path + " does not hold a 40-character Z85 key");
  if (!curve_available()) throw RuntimeError("this ZeroMQ library has no CURVE support (built without libsodium)");
  char pub[41];
  if (zmq_curve_public(pub, secret.c_str()) != 0)
    throw ValueError("secret key file " + path + ": " + zmq_strerror(zmq_errno()));
  return KeyPair{std::string(pub, 40), std::move(secret)};
}

std::string KeyPair::save(const std::string& name_or_path, const std::string& home, bool overwrite) const {
  if (!security::is_z85_key(public_key) || !security::is_z85_key(secret_key))
    throw ValueError("a key pair needs two 40-character Z85 keys");
  std::string secret_path = secret_key_path(name_or_path, home);
  fs::path dir = fs::path(secret_path).parent_path();
  std::string public_path = secret_path;
  if (public_path.size() > 4 && public_path.compare(public_path.size() - 4, 4, ".key") == 0)
    public_path.resize(public_path.size() - 4);
  public_path += ".pub";
  if (!dir.empty() && !fs::exists(dir)) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw RuntimeError("cannot create " + dir.string() + ": " + ec.message());
    fs::permissions(dir, fs::perms::owner_all, ec);
  }
  std::string name = fs::path(public_path).stem().string();
  write_file(secret_path, "# mKTL CURVE secret key '" + name + "': keep it private (mode 0600)\n" + secret_key + "\n",
             0600, overwrite);
  write_file(public_path, "# mKTL CURVE public key '" + name + "'\n" + public_key + "\n", 0644, overwrite);
  return secret_path;
}

std::string load_public_key(const std::string& key_or_file, const std::string& home) {
  std::string text = strip(key_or_file);
  if (text.empty()) throw ValueError("empty public key");
  // Z85's alphabet has '/': a 40-character key is a key unless a file has that name.
  if (security::is_z85_key(text) && !fs::exists(text)) return text;
  std::string path = is_path(text) ? text : (fs::path(home_or_default(home)) / "keys" / (text + ".pub")).string();
  if (!fs::exists(path))
    throw ValueError("'" + key_or_file + "' is neither a 40-character Z85 public key nor a key file (no " + path + ")");
  std::string key = key_line(path);
  if (!security::is_z85_key(key)) throw ValueError("public key file " + path + " does not hold a 40-character Z85 key");
  return key;
}

}  // namespace mktl
