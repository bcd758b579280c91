// Logger: one line per event on stderr, prefixed with time, node and level.
// LogLimited keeps noisy events (bad input from a peer, say) to one line per
// key per second and reports how many it held back. Not thread-safe: each
// broker's loop thread has its own.
#pragma once

#include <chrono>
#include <string>
#include <unordered_map>

namespace meshbus {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
LogLevel ParseLogLevel(const std::string& text);  // unknown text: info

class Logger {
 public:
  Logger(std::string node, LogLevel level) : node_(std::move(node)), level_(level) {}
  bool Enabled(LogLevel level) const { return level >= level_; }
  void Log(LogLevel level, const std::string& message);
  void LogLimited(LogLevel level, const std::string& key, const std::string& message);

 private:
  struct Limited {
    std::chrono::steady_clock::time_point last{};
    uint64_t held_back = 0;
  };
  std::string node_;
  LogLevel level_;
  std::unordered_map<std::string, Limited> limited_;
};

}  // namespace meshbus
