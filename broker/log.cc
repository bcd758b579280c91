#include "broker/log.h"

#include <cstdio>
#include <ctime>

namespace meshbus {

LogLevel ParseLogLevel(const std::string& text) {
  if (text == "debug") return LogLevel::kDebug;
  if (text == "warn") return LogLevel::kWarn;
  if (text == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

void Logger::Log(LogLevel level, const std::string& message) {
  if (!Enabled(level)) return;
  static const char* kNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  auto now = std::chrono::system_clock::now();
  std::time_t secs = std::chrono::system_clock::to_time_t(now);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::fprintf(stderr, "%s.%03lldZ %s %s %s\n", stamp, static_cast<long long>(ms), node_.c_str(),
               kNames[static_cast<int>(level)], message.c_str());
}

void Logger::LogLimited(LogLevel level, const std::string& key, const std::string& message) {
  if (!Enabled(level)) return;
  auto now = std::chrono::steady_clock::now();
  Limited& l = limited_[key];
  if (now - l.last < std::chrono::seconds(1)) {
    ++l.held_back;
    return;
  }
  std::string line = message;
  if (l.held_back > 0) line += " (" + std::to_string(l.held_back) + " more like it not logged)";
  l.last = now;
  l.held_back = 0;
  Log(level, line);
}

}  // namespace meshbus
