#include "bin/cli.h"

#include <signal.h>

#include <csignal>
#include <iostream>
#include <sstream>

namespace meshbus::cli {

int Fail(const Status& status) {
  std::cerr << "meshbus: " << status.ToString() << "\n";
  return 1;
}

// Like Fail, with the exit code that tells a script why a message went
// nowhere, or why the registry did not do what was asked.
int FailWithCode(const Status& status) {
  Fail(status);
  switch (status.code()) {
    case meshbus::Code::kTimeout:
      return kExitTimeout;
    case meshbus::Code::kNoResponders:
    case meshbus::Code::kNoMembers:
    case meshbus::Code::kNoEmitters:
      return kExitNobody;
    case meshbus::Code::kTaken:
    case meshbus::Code::kNotRegistered:
    case meshbus::Code::kNotHolder:
    case meshbus::Code::kExists:
      return kExitRefused;
    case meshbus::Code::kNoLeader:
      return kExitNoLeader;
    default:
      return 1;
  }
}

namespace {

// Set by SIGINT/SIGTERM in the commands that run until stopped.
volatile std::sig_atomic_t g_stop_requested = 0;

extern "C" void OnStopSignal(int) {
  g_stop_requested = 1;
}

}  // namespace

bool StopRequested() {
  return g_stop_requested != 0;
}

void InstallStopHandlers() {
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: a blocked wait returns early
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

void SetStopSignalsBlocked(bool blocked) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
}

// Connects to the broker. Stop signals are blocked while the SDK (and
// libzmq) start their threads, so those threads inherit the mask and every
// signal reaches the main thread; one that came meanwhile is delivered when
// they are unblocked.
Result<Client> Connect(const Global& global, milliseconds connect_timeout) {
  meshbus::ClientOptions options;
  options.endpoint = global.broker;
  options.name = "meshbus-cli";
  options.call_timeout = milliseconds(global.timeout_ms);
  options.connect_timeout = connect_timeout;
  SetStopSignalsBlocked(true);
  Result<Client> client = Client::Connect(std::move(options));
  SetStopSignalsBlocked(false);
  if (client.ok()) return client;
  const Status& status = client.status();
  if (status.message().find(global.broker) != std::string::npos) return status;
  return Status(status.code(), "broker " + global.broker + ": " + status.message());
}

Result<Client> Connect(const Global& global) {
  return Connect(global, milliseconds(global.timeout_ms));
}

// Validates a number given on the command line: at least `min`. CLI11's own
// range validators print the limits of double.
CLI::Validator AtLeast(double min) {
  std::ostringstream text;
  text << min;
  const std::string min_text = text.str();
  return CLI::Validator(
      [min, min_text](std::string& input) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(input, value)) return "'" + input + "' is not a number";
        if (value < min) return "must be at least " + min_text + ", not " + input;
        return "";
      },
      ">=" + min_text);
}

milliseconds Seconds(double seconds) {
  return milliseconds(static_cast<int64_t>(std::min(seconds, 1e9) * 1000.0));  // 1e9 s: forever
}

// A deadline that many seconds from now; none (never) when not given.
Clock::time_point DeadlineAfter(std::optional<double> seconds) {
  return seconds ? Clock::now() + Seconds(*seconds) : Clock::time_point::max();
}

milliseconds TimeLeft(Clock::time_point deadline) {
  return std::max(milliseconds(0),
                  std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
}

std::string JoinIds(const std::vector<MemberId>& members) {
  if (members.empty()) return "-";
  std::string out;
  for (const MemberId& m : members) {
    if (!out.empty()) out += ' ';
    out += m.ToString();
  }
  return out;
}

Json IdsJson(const std::vector<MemberId>& members) {
  Json ids = Json::array();
  for (const MemberId& m : members) ids.push_back(m.ToString());
  return ids;
}

// One JSON document on one line. Scopes and groups are validated UTF-8, but
// a bad byte must not abort the CLI: replace it.
void PrintJson(const Json& doc) {
  std::cout << doc.dump(-1, ' ', false, Json::error_handler_t::replace) << std::endl;
}
// The same, with the keys in the order given (messages: topic, from, payload).
void PrintOrderedJson(const OrderedJson& doc) {
  std::cout << doc.dump(-1, ' ', false, Json::error_handler_t::replace) << std::endl;
}

Result<LoopEnd> ReceiveUntil(Client& client, Clock::time_point deadline,
                             const std::function<Status(const meshbus::Delivery&)>& handle,
                             const std::function<bool()>& done) {
  SessionCheck check;
  while (true) {
    if (done()) return LoopEnd::kDone;
    if (StopRequested()) return LoopEnd::kStopped;
    const milliseconds left = TimeLeft(deadline);
    if (left <= milliseconds(0)) return LoopEnd::kDeadline;
    Result<meshbus::Delivery> delivery = client.Receive(std::min(left, kReceiveSlice));
    if (delivery.ok()) {
      if (Status s = handle(*delivery); !s.ok()) return s;
    } else if (delivery.status().code() != meshbus::Code::kTimeout) {
      if (StopRequested()) return LoopEnd::kStopped;  // the signal interrupted the wait
      return delivery.status();
    }
    if (Status s = check.Due(client); !s.ok() && !StopRequested()) return s;
  }
}

Status HoldName(Client& client, const std::string& name, const std::string& what,
                Clock::time_point deadline,
                const std::function<void(const meshbus::Delivery&)>& on_delivery) {
  const MemberId self = client.self();
  bool lost = false;
  auto handle = [&](const meshbus::Delivery& delivery) {
    if (on_delivery) on_delivery(delivery);
    const auto* event = std::get_if<meshbus::NameEvent>(&delivery);
    if (event != nullptr && event->kind == meshbus::NameEventKind::kUnregistered &&
        event->entry.name == name && event->entry.holder == self) {
      lost = true;
    }
    return Status::Ok();
  };
  Result<LoopEnd> end = ReceiveUntil(client, deadline, handle, [&] { return lost; });
  if (!end.ok()) return end.status();
  if (lost) {
    return Status::Unavailable("the registry released " + what +
                               " while this session held it (was this node cut off, or "
                               "declared dead?)");
  }
  return Status::Ok();
}

}  // namespace meshbus::cli
