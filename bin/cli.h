// The plumbing the meshbus CLI's commands share: global options, exit
// codes, connecting, stop signals, deadlines, JSON and table output, the
// receive loop of the commands that run until stopped, and how a command is
// bound to its subcommand. Used from the main thread only.
#pragma once

#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "sdk/client.h"

namespace meshbus::cli {

using meshbus::Client;
using meshbus::MemberId;
using meshbus::Result;
using meshbus::Status;
using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long one Receive() waits before the stop flag and deadlines are checked
// again: the CLI reacts to a signal within this time.
inline constexpr milliseconds kReceiveSlice{100};
// How often a long-running command (join, monitor) checks that its broker
// still has its session: deliveries alone cannot tell a quiet broker from a
// dead or restarted one.
inline constexpr milliseconds kSessionCheckEvery{1000};

// Options that every command shares.
struct Global {
  std::string broker = meshbus::DefaultBrokerEndpoint();
  int timeout_ms = 3000;  // per call, and for connecting
};

// Exit codes (see meshbus.cc's header).
inline constexpr int kExitTimeout = 3;
inline constexpr int kExitNobody = 4;
inline constexpr int kExitRefused = 5;
inline constexpr int kExitNoLeader = 6;

// Prints "meshbus: <status>" and returns 1.
int Fail(const Status& status);
// Like Fail, with the exit code that tells a script why a message went
// nowhere, or why the registry did not do what was asked.
int FailWithCode(const Status& status);

// SIGINT/SIGTERM end the commands that run until stopped.
bool StopRequested();
void InstallStopHandlers();
// Blocks (or unblocks) the stop signals in this thread, so that threads
// started meanwhile inherit the mask and leave the signals to this one.
void SetStopSignalsBlocked(bool blocked);

// Connects to the broker, with the stop signals kept for the main thread.
Result<Client> Connect(const Global& global, milliseconds connect_timeout);
Result<Client> Connect(const Global& global);

// A command-line number of at least `min`.
CLI::Validator AtLeast(double min);
milliseconds Seconds(double seconds);
// A deadline that many seconds from now; none (never) when not given.
Clock::time_point DeadlineAfter(std::optional<double> seconds);
milliseconds TimeLeft(Clock::time_point deadline);

std::string JoinIds(const std::vector<MemberId>& members);  // "-" when none
Json IdsJson(const std::vector<MemberId>& members);
// One JSON document on one line; a bad UTF-8 byte is replaced.
void PrintJson(const Json& doc);
void PrintOrderedJson(const OrderedJson& doc);

// A table printed with aligned columns; the last column is not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

  void Print(std::ostream& out) const {
    std::vector<size_t> widths;
    for (const auto& row : rows_) {
      widths.resize(std::max(widths.size(), row.size()), 0);
      for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    }
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
      }
      out << line << "\n";
    }
    out.flush();
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

// Asks the broker something cheap, once per kSessionCheckEvery; an error
// means the broker is gone, or restarted and no longer knows this session.
class SessionCheck {
 public:
  Status Due(Client& client) {
    if (Clock::now() < next_) return Status::Ok();
    next_ = Clock::now() + kSessionCheckEvery;
    Result<std::vector<meshbus::NodeInfo>> nodes = client.Nodes();
    if (nodes.ok()) return Status::Ok();
    if (nodes.status().code() == meshbus::Code::kUnavailable) {
      return Status(
          nodes.status().code(),
          "the broker no longer has this session (did it restart?): " + nodes.status().message());
    }
    return nodes.status();
  }

 private:
  Clock::time_point next_ = Clock::now() + kSessionCheckEvery;
};

// How a receiving loop ended, when not with an error.
enum class LoopEnd { kDone, kStopped, kDeadline };

// Hands each delivery to `handle` until `done()`, a stop signal, or the
// deadline; checks meanwhile that the broker still has the session.
Result<LoopEnd> ReceiveUntil(Client& client, Clock::time_point deadline,
                             const std::function<Status(const meshbus::Delivery&)>& handle,
                             const std::function<bool()>& done);

// Keeps this session (and so `name`, a registry name it holds, watched by a
// MonitorNames since before it was registered) until the deadline or a stop
// signal, handing every delivery to `on_delivery`. kUnavailable when the
// registry releases the name meanwhile (this node cut off, or declared
// dead); `what` names it in that message.
Status HoldName(Client& client, const std::string& name, const std::string& what,
                Clock::time_point deadline,
                const std::function<void(const meshbus::Delivery&)>& on_delivery = {});

// A subcommand and what runs it once the command line is parsed. The
// arguments live in the shared_ptr the `run` closure holds.
struct Command {
  CLI::App* app;
  std::function<int()> run;
};

template <typename Args>
Command Bind(CLI::App* app, std::shared_ptr<Args> args, const Global& global,
             int (*run)(const Global&, const Args&)) {
  return {app, [args, &global, run] { return run(global, *args); }};
}

// The event-store commands (cli_eventstore.cc).
std::vector<Command> AddEventStoreCommands(CLI::App& app, const Global& global);

}  // namespace meshbus::cli
