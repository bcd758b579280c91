// meshbus: the operator CLI. Talks to one broker (the local one by default)
// through the SDK and shows what that broker sees of the mesh: nodes, groups,
// members, monitor events and counters. It can also hold a membership
// (`join`) and wait for a mesh to form (`wait`), which the scripts use, and
// take part in messaging: publish and subscribe (`pub`, `sub`), requests and
// a responder (`req`, `serve`), `broadcast`, `dispatch` and `send`; and use
// the name registry (`register`, `unregister`, `whereis`, `names`, `leader`);
// and the event store's coordination layer (cli_eventstore.cc).
//
// Exit codes: 0 success, 1 an error (printed as "meshbus: <status>"),
// 2 a usage error, 3 a timeout (`req`; `sub --count` with `--timeout-ms`;
// a registry call whose outcome is unknown), 4 nobody to take a message
// (`req`: no_responders, `dispatch`: no_members), 5 the registry said no
// (taken, not_registered, not_holder), 6 the registry has no reachable
// leader (no_leader; `leader` when none is known).

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bin/cli.h"
#include "sdk/client.h"

namespace {

using namespace meshbus::cli;
// How often `wait` asks the broker for its nodes.
constexpr milliseconds kWaitPollInterval{50};

// ---- nodes -------------------------------------------------------------------

struct NodesArgs {
  bool json = false;
};

int RunNodes(const Global& global, const NodesArgs& args) {
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Result<std::vector<meshbus::NodeInfo>> nodes = client->Nodes();
  if (!nodes.ok()) return Fail(nodes.status());
  std::sort(nodes->begin(), nodes->end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });

  if (args.json) {
    Json doc = Json::array();
    for (const meshbus::NodeInfo& n : *nodes) {
      doc.push_back({{"name", n.name},
                     {"incarnation", meshbus::IncarnationHex(n.incarnation)},
                     {"state", n.state},
                     {"address", n.calls_endpoint},
                     {"last_heard_ms", n.is_self ? Json(nullptr) : Json(n.last_heard_ms_ago)},
                     {"self", n.is_self}});
    }
    PrintJson(doc);
    return 0;
  }
  Table table({"", "NAME", "INCARNATION", "STATE", "ADDRESS", "LAST HEARD"});
  for (const meshbus::NodeInfo& n : *nodes) {
    table.Add({n.is_self ? "*" : "", n.name, meshbus::IncarnationHex(n.incarnation), n.state,
               n.calls_endpoint,
               n.is_self ? "-" : std::to_string(n.last_heard_ms_ago) + " ms ago"});
  }
  table.Print(std::cout);
  return 0;
}

// ---- groups ------------------------------------------------------------------

struct GroupsArgs {
  std::string scope;  // empty: every scope
  bool json = false;
};

int RunGroups(const Global& global, const GroupsArgs& args) {
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Result<std::vector<meshbus::GroupCount>> groups = client->Groups(args.scope);
  if (!groups.ok()) return Fail(groups.status());
  std::sort(groups->begin(), groups->end(), [](const auto& a, const auto& b) {
    return std::tie(a.scope, a.group) < std::tie(b.scope, b.group);
  });

  if (args.json) {
    Json doc = Json::array();
    for (const meshbus::GroupCount& g : *groups) {
      doc.push_back({{"scope", g.scope}, {"group", g.group}, {"members", g.count}});
    }
    PrintJson(doc);
    return 0;
  }
  Table table({"SCOPE", "GROUP", "MEMBERS"});
  for (const meshbus::GroupCount& g : *groups) {
    table.Add({g.scope, g.group, std::to_string(g.count)});
  }
  table.Print(std::cout);
  return 0;
}

// ---- members -----------------------------------------------------------------

struct MembersArgs {
  std::string scope, group;
  bool local = false;
  bool json = false;
};

int RunMembers(const Global& global, const MembersArgs& args) {
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Result<std::vector<MemberId>> members = args.local ? client->LocalMembers(args.scope, args.group)
                                                     : client->Members(args.scope, args.group);
  if (!members.ok()) return Fail(members.status());

  if (args.json) {
    PrintJson(IdsJson(*members));
    return 0;
  }
  // One id per line and no header, so that scripts can grep and count.
  for (const MemberId& m : *members) std::cout << m.ToString() << "\n";
  std::cout.flush();
  return 0;
}

// ---- join --------------------------------------------------------------------

struct JoinArgs {
  std::string scope, group;
  std::optional<double> hold_seconds;  // none: until SIGINT/SIGTERM
};

int RunJoin(const Global& global, const JoinArgs& args) {
  InstallStopHandlers();
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  if (Status s = client->Join(args.scope, args.group); !s.ok()) return Fail(s);
  std::cout << client->self().ToString() << std::endl;

  // Hold the membership. The SDK heartbeats on its own thread; this thread
  // only watches the clock, the stop flag and the session's health.
  const Clock::time_point deadline = DeadlineAfter(args.hold_seconds);
  SessionCheck check;
  while (!StopRequested()) {
    const milliseconds left = TimeLeft(deadline);
    if (left <= milliseconds(0)) break;
    Result<meshbus::Delivery> delivery = client->Receive(std::min(left, kReceiveSlice));
    if (delivery.ok() || delivery.status().code() == meshbus::Code::kTimeout) {
      if (Status s = check.Due(*client); !s.ok() && !StopRequested()) return Fail(s);
      continue;
    }
    if (StopRequested()) break;  // the signal interrupted the wait
    return Fail(delivery.status());
  }
  if (Status s = client->Close(); !s.ok()) return Fail(s);
  return 0;
}

// ---- monitor -----------------------------------------------------------------

struct MonitorArgs {
  std::string scope;
  std::optional<std::string> group;  // none: the whole scope
  bool json = false;
  std::optional<uint64_t> count;          // stop after this many events
  std::optional<double> timeout_seconds;  // stop after this long
};

void PrintMembersLine(const MonitorArgs& args, const std::string& scope, const std::string& group,
                      const std::vector<MemberId>& members) {
  if (args.json) {
    PrintJson(
        {{"type", "members"}, {"scope", scope}, {"group", group}, {"members", IdsJson(members)}});
  } else {
    std::cout << "members  " << scope << " " << group << "  " << JoinIds(members) << std::endl;
  }
}

void PrintDelivery(const MonitorArgs& args, const meshbus::Delivery& delivery) {
  if (const auto* event = std::get_if<meshbus::MonitorEvent>(&delivery)) {
    const std::string kind(meshbus::wire::EventKindName(event->kind));
    if (args.json) {
      PrintJson({{"type", kind},
                 {"scope", event->scope},
                 {"group", event->group},
                 {"members", IdsJson(event->members)}});
    } else {
      std::string padded = kind + std::string(kind.size() < 7 ? 7 - kind.size() : 0, ' ');
      std::cout << padded << "  " << event->scope << " " << event->group << "  "
                << JoinIds(event->members) << std::endl;
    }
  } else if (const auto* gap = std::get_if<meshbus::GapNotice>(&delivery)) {
    if (args.json) {
      PrintJson({{"type", "gap"}, {"lost", gap->lost}});
    } else {
      std::cout << "gap      " << gap->lost
                << " deliveries lost (this client read too slowly); the view may be stale"
                << std::endl;
    }
  }
}

int RunMonitor(const Global& global, const MonitorArgs& args) {
  InstallStopHandlers();
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Result<meshbus::MonitorStart> start =
      args.group ? client->Monitor(args.scope, *args.group) : client->MonitorScope(args.scope);
  if (!start.ok()) return Fail(start.status());

  // The members now. A group monitor always shows its group, even if empty.
  bool group_shown = false;
  for (const meshbus::GroupMembers& g : start->groups) {
    PrintMembersLine(args, g.scope, g.group, g.members);
    group_shown = group_shown || (args.group && g.group == *args.group);
  }
  if (args.group && !group_shown) PrintMembersLine(args, args.scope, *args.group, {});

  const Clock::time_point deadline = DeadlineAfter(args.timeout_seconds);
  uint64_t events = 0;
  SessionCheck check;
  while (!StopRequested() && !(args.count && events >= *args.count)) {
    const milliseconds left = TimeLeft(deadline);
    if (left <= milliseconds(0)) break;
    Result<meshbus::Delivery> delivery = client->Receive(std::min(left, kReceiveSlice));
    if (!delivery.ok()) {
      if (delivery.status().code() == meshbus::Code::kTimeout) {
        if (Status s = check.Due(*client); !s.ok() && !StopRequested()) return Fail(s);
        continue;
      }
      if (StopRequested()) break;  // the signal interrupted the wait
      return Fail(delivery.status());
    }
    PrintDelivery(args, *delivery);
    if (std::holds_alternative<meshbus::MonitorEvent>(*delivery)) ++events;
  }
  if (Status s = client->Close(); !s.ok()) return Fail(s);
  if (args.count && events < *args.count && !StopRequested()) {
    return Fail(Status::Timeout("saw " + std::to_string(events) + " of " +
                                std::to_string(*args.count) + " events"));
  }
  return 0;
}

// ---- wait --------------------------------------------------------------------

struct WaitArgs {
  uint64_t nodes = 1;
  double timeout_seconds = 10;
};

std::string DescribeShortfall(const WaitArgs& args, const std::vector<meshbus::NodeInfo>& nodes) {
  std::vector<std::string> alive, not_alive;
  for (const meshbus::NodeInfo& n : nodes) {
    if (n.is_self || n.state == "alive") {
      alive.push_back(n.name);
    } else {
      not_alive.push_back(n.name + " (" + n.state + ")");
    }
  }
  std::ostringstream out;
  out << alive.size() << " of " << args.nodes << " nodes alive after " << args.timeout_seconds
      << " s; alive:";
  for (const auto& name : alive) out << " " << name;
  if (!not_alive.empty()) {
    out << "; not alive:";
    for (const auto& name : not_alive) out << " " << name;
  }
  if (nodes.size() < args.nodes) out << "; never heard of: " << args.nodes - nodes.size();
  return out.str();
}

size_t AliveCount(const std::vector<meshbus::NodeInfo>& nodes) {
  return std::count_if(nodes.begin(), nodes.end(),
                       [](const auto& n) { return n.is_self || n.state == "alive"; });
}

int RunWait(const Global& global, const WaitArgs& args) {
  InstallStopHandlers();
  const Clock::time_point deadline = DeadlineAfter(args.timeout_seconds);
  auto time_left = [&] { return TimeLeft(deadline); };

  // The broker may still be starting: keep trying to connect until the deadline.
  std::optional<Client> client;
  Status last_error;
  while (!client && !StopRequested()) {
    Result<Client> attempt =
        Connect(global, std::clamp(time_left(), milliseconds(1), milliseconds(global.timeout_ms)));
    if (attempt.ok()) {
      client.emplace(std::move(attempt).value());
      break;
    }
    last_error = attempt.status();
    if (time_left() <= milliseconds(0)) {
      std::ostringstream why;
      why << "no broker answered at " << global.broker << " within " << args.timeout_seconds
          << " s (last: " << last_error.ToString() << ")";
      return Fail(Status::Timeout(why.str()));
    }
    std::this_thread::sleep_for(std::min(time_left(), kWaitPollInterval));
  }

  std::vector<meshbus::NodeInfo> last_seen;
  while (!StopRequested()) {
    Result<std::vector<meshbus::NodeInfo>> nodes = client->Nodes();
    if (nodes.ok()) {
      last_seen = *nodes;
      if (AliveCount(last_seen) >= args.nodes) return 0;
    } else {
      last_error = nodes.status();  // perhaps transient: keep polling
    }
    if (time_left() <= milliseconds(0)) {
      std::string why = DescribeShortfall(args, last_seen);
      if (!nodes.ok()) why += "; last error: " + last_error.ToString();
      return Fail(Status::Timeout(why));
    }
    std::this_thread::sleep_for(std::min(time_left(), kWaitPollInterval));
  }
  return Fail(Status::Unavailable("interrupted"));
}

// ---- stats -------------------------------------------------------------------

struct StatsArgs {
  bool json = false;
};

int RunStats(const Global& global, const StatsArgs& args) {
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Result<std::map<std::string, uint64_t>> stats = client->Stats();
  if (!stats.ok()) return Fail(stats.status());

  if (args.json) {
    Json doc = Json::object();
    for (const auto& [name, value] : *stats) doc[name] = value;
    PrintJson(doc);
    return 0;
  }
  Table table({"COUNTER", "VALUE"});
  for (const auto& [name, value] : *stats) table.Add({name, std::to_string(value)});
  table.Print(std::cout);
  return 0;
}

// ---- messaging ---------------------------------------------------------------

// The i-th of `count` messages: MESSAGE followed by i (from 0), so that loss
// and order can be checked by eye; MESSAGE itself when no count was given.
std::string NthPayload(const std::string& message, const std::optional<uint64_t>& count,
                       uint64_t i) {
  return count ? message + std::to_string(i) : message;
}

// Errors the broker reports after the fact, for a Publish or Broadcast (an
// Outcome with ticket 0); nullptr for any other delivery.
const Status* LateError(const meshbus::Delivery& delivery) {
  const auto* outcome = std::get_if<meshbus::Outcome>(&delivery);
  return outcome != nullptr && outcome->ticket == 0 && !outcome->status.ok() ? &outcome->status
                                                                             : nullptr;
}

// Ends the session of a command that only sent (pub, broadcast): the broker
// answers the goodbye after everything sent before it, so once Close returns
// it has every message, and any error it found in one came before.
int CloseAfterSending(Client& client) {
  if (Status s = client.Close(); !s.ok()) return Fail(s);
  while (true) {
    Result<meshbus::Delivery> delivery = client.Receive(milliseconds(0));
    if (!delivery.ok()) return 0;  // none left: the client is closed
    if (const Status* error = LateError(*delivery)) return Fail(*error);
  }
}

void PrintGap(const meshbus::GapNotice& gap, bool json) {
  std::cerr << "gap: " << gap.lost << " messages lost" << std::endl;
  if (json) PrintOrderedJson(OrderedJson{{"gap", gap.lost}});
}

// ---- pub ---------------------------------------------------------------------

struct PubArgs {
  std::string topic, message;
  std::optional<uint64_t> count;  // none: one message, MESSAGE itself
};

int RunPub(const Global& global, const PubArgs& args) {
  InstallStopHandlers();
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  const uint64_t total = args.count.value_or(1);
  uint64_t sent = 0;
  for (; sent < total && !StopRequested(); ++sent) {
    if (Status s = client->Publish(args.topic, NthPayload(args.message, args.count, sent));
        !s.ok()) {
      return Fail(s);
    }
    // A publish is answered only when it fails: read now and then, so that
    // such answers do not pile up unread.
    if (sent % 256 == 255) {
      Result<meshbus::Delivery> delivery = client->Receive(milliseconds(0));
      if (delivery.ok()) {
        if (const Status* error = LateError(*delivery)) return Fail(*error);
      }
    }
  }
  if (int rc = CloseAfterSending(*client); rc != 0) return rc;
  std::cout << "published " << sent << std::endl;
  if (sent < total) {
    return Fail(Status::Unavailable("interrupted after " + std::to_string(sent) + " of " +
                                    std::to_string(total) + " messages"));
  }
  return 0;
}

// ---- sub ---------------------------------------------------------------------

struct SubArgs {
  std::string prefix;
  std::optional<uint64_t> count;      // stop after this many messages
  std::optional<int64_t> timeout_ms;  // give up after this long (from subscribing)
  bool json = false;
};

int RunSub(const Global& global, const SubArgs& args) {
  InstallStopHandlers();
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  if (Status s = client->Subscribe(args.prefix); !s.ok()) return Fail(s);
  std::cerr << "subscribed" << std::endl;

  const Clock::time_point deadline =
      args.timeout_ms ? Clock::now() + milliseconds(*args.timeout_ms) : Clock::time_point::max();
  uint64_t received = 0;
  auto handle = [&](const meshbus::Delivery& delivery) {
    if (const auto* m = std::get_if<meshbus::Message>(&delivery)) {
      if (m->kind != meshbus::MessageKind::kPublish) return Status::Ok();
      if (args.json) {
        PrintOrderedJson(OrderedJson{
            {"topic", m->topic}, {"from", m->from.ToString()}, {"payload", m->payload}});
      } else {
        std::cout << m->topic << " " << m->payload << std::endl;
      }
      ++received;
    } else if (const auto* gap = std::get_if<meshbus::GapNotice>(&delivery)) {
      PrintGap(*gap, args.json);
    } else if (const Status* error = LateError(delivery)) {
      std::cerr << "meshbus: " << error->ToString() << std::endl;
    }
    return Status::Ok();
  };
  Result<LoopEnd> end = ReceiveUntil(*client, deadline, handle,
                                     [&] { return args.count && received >= *args.count; });
  if (!end.ok()) return Fail(end.status());
  if (Status s = client->Close(); !s.ok()) return Fail(s);
  if (*end == LoopEnd::kDeadline && args.count) {
    return FailWithCode(Status::Timeout("got " + std::to_string(received) + " of " +
                                        std::to_string(*args.count) + " messages within " +
                                        std::to_string(*args.timeout_ms) + " ms"));
  }
  return 0;
}

// ---- req ---------------------------------------------------------------------

struct ReqArgs {
  std::string scope, group, message;
  int64_t timeout_ms = 3000;
  bool json = false;
};

int RunReq(const Global& global, const ReqArgs& args) {
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Result<meshbus::Message> reply =
      client->Request(args.scope, args.group, args.message, milliseconds(args.timeout_ms));
  if (!reply.ok()) return FailWithCode(reply.status());
  if (args.json) {
    PrintOrderedJson(OrderedJson{{"from", reply->from.ToString()}, {"payload", reply->payload}});
  } else {
    std::cout << reply->payload << std::endl;
  }
  if (Status s = client->Close(); !s.ok()) return Fail(s);
  return 0;
}

// ---- serve -------------------------------------------------------------------

struct ServeArgs {
  std::string scope, group;
  std::optional<std::string> reply;  // none: the request, prefixed with who answers
  std::optional<uint64_t> count;     // stop after this many requests
  bool json = false;
};

void PrintReceived(const meshbus::Message& m, bool json) {
  const std::string kind(meshbus::wire::MessageKindName(m.kind));
  if (json) {
    OrderedJson doc = {{"kind", kind}, {"from", m.from.ToString()}};
    if (!m.topic.empty()) doc["topic"] = m.topic;
    if (!m.group.empty()) {
      doc["scope"] = m.scope;
      doc["group"] = m.group;
    }
    doc["payload"] = m.payload;
    PrintOrderedJson(doc);
  } else {
    std::cout << kind << " " << m.from.ToString() << " " << m.payload << std::endl;
  }
}

int RunServe(const Global& global, const ServeArgs& args) {
  InstallStopHandlers();
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  if (Status s = client->Join(args.scope, args.group); !s.ok()) return Fail(s);
  const std::string self = client->self().ToString();
  std::cerr << "serving as " << self << std::endl;

  uint64_t handled = 0;
  auto handle = [&](const meshbus::Delivery& delivery) {
    if (const auto* m = std::get_if<meshbus::Message>(&delivery)) {
      PrintReceived(*m, args.json);
      if (m->kind != meshbus::MessageKind::kRequest) return Status::Ok();
      ++handled;
      const std::string answer = args.reply ? *args.reply : self + ": " + m->payload;
      // The requester may have stopped waiting: say so, and serve on.
      if (Status s = client->Reply(*m, answer); !s.ok()) {
        std::cerr << "meshbus: no reply to " << m->from.ToString() << ": " << s.ToString()
                  << std::endl;
      }
    } else if (const auto* gap = std::get_if<meshbus::GapNotice>(&delivery)) {
      PrintGap(*gap, args.json);
    }
    return Status::Ok();
  };
  Result<LoopEnd> end = ReceiveUntil(*client, Clock::time_point::max(), handle,
                                     [&] { return args.count && handled >= *args.count; });
  if (!end.ok()) return Fail(end.status());
  if (Status s = client->Close(); !s.ok()) return Fail(s);
  return 0;
}

// ---- broadcast, dispatch, send -----------------------------------------------

struct BroadcastArgs {
  std::string scope, group, message;
};

int RunBroadcast(const Global& global, const BroadcastArgs& args) {
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  if (Status s = client->Broadcast(args.scope, args.group, args.message); !s.ok()) return Fail(s);
  return CloseAfterSending(*client);
}

struct DispatchArgs {
  std::string scope, group, message;
  std::optional<uint64_t> count;  // none: one message, MESSAGE itself
};

int RunDispatch(const Global& global, const DispatchArgs& args) {
  InstallStopHandlers();
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  const uint64_t total = args.count.value_or(1);
  for (uint64_t i = 0; i < total; ++i) {
    if (StopRequested()) {
      return Fail(Status::Unavailable("interrupted after " + std::to_string(i) + " of " +
                                      std::to_string(total) + " messages"));
    }
    Result<MemberId> member =
        client->Dispatch(args.scope, args.group, NthPayload(args.message, args.count, i));
    if (!member.ok()) return FailWithCode(member.status());
    std::cout << member->ToString() << std::endl;  // line i: who got message i
  }
  if (Status s = client->Close(); !s.ok()) return Fail(s);
  return 0;
}

struct SendArgs {
  std::vector<std::string> words;  // MEMBER MESSAGE, or MESSAGE with --name
  std::optional<std::string> name;
};

// The word count depends on --name, which CLI11 cannot express: checked once
// parsed, as a usage error.
void CheckSendWords(const SendArgs& args) {
  if (args.name && args.words.size() != 1) {
    throw CLI::ValidationError("send", "with --name, give only MESSAGE");
  }
  if (!args.name && args.words.size() != 2) {
    throw CLI::ValidationError("send", "give MEMBER_ID MESSAGE, or --name NAME MESSAGE");
  }
}

int RunSend(const Global& global, const SendArgs& args) {
  if (args.name) {
    // Checked here too, so that a bad name does not wait for a broker.
    if (Status s = meshbus::ValidateRegistryName(*args.name); !s.ok()) return Fail(s);
    Result<Client> client = Connect(global);
    if (!client.ok()) return Fail(client.status());
    Result<MemberId> holder = client->SendByName(*args.name, args.words[0]);
    if (!holder.ok()) return FailWithCode(holder.status());
    std::cout << holder->ToString() << std::endl;  // who got it, as `dispatch` prints
    if (Status s = client->Close(); !s.ok()) return Fail(s);
    return 0;
  }
  const std::string& id = args.words[0];
  std::optional<MemberId> member = MemberId::Parse(id);
  if (!member) {
    return Fail(Status::InvalidArgument("'" + id +
                                        "' is not a member id (NODE.INCARNATION.SESSION, as "
                                        "`join` and `members` print)"));
  }
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  if (Status s = client->Send(*member, args.words[1]); !s.ok()) return FailWithCode(s);
  if (Status s = client->Close(); !s.ok()) return Fail(s);
  return 0;
}

// ---- the name registry -------------------------------------------------------

// A parse error without nlohmann's "[json.exception.parse_error.101] " prefix.
std::string JsonErrorText(const std::exception& e) {
  std::string text = e.what();
  if (size_t end = text.find("] "); text.rfind("[json.exception.", 0) == 0 && end != text.npos) {
    text.erase(0, end + 2);
  }
  return text;
}

// --meta as stored: its compact dump, keys sorted, so equal documents are equal bytes.
Result<std::string> CompactMetadata(const std::optional<std::string>& meta) {
  if (!meta) return std::string();
  std::string compact;
  try {
    compact = Json::parse(*meta).dump();
  } catch (const Json::parse_error& e) {
    return Status::InvalidArgument("--meta is not valid JSON: " + JsonErrorText(e));
  }
  if (Status s = meshbus::ValidateNameMetadata(compact); !s.ok()) {
    return Status(s.code(), "--meta: " + s.message() + " (as compact JSON)");
  }
  return compact;
}

// Metadata in a table. The CLI stores JSON, but other clients may store any
// bytes: what would garble a terminal is shown as its size.
std::string MetadataText(const std::string& metadata) {
  if (metadata.empty()) return "-";
  const std::string opaque = "<" + std::to_string(metadata.size()) + " bytes>";
  for (unsigned char c : metadata) {
    if (c < 0x20 || c == 0x7f) return opaque;
  }
  try {
    (void)Json(metadata).dump();  // throws on bad UTF-8
  } catch (const Json::type_error&) {
    return opaque;
  }
  return metadata;
}

// Metadata in JSON output: the document itself when it is JSON, else a string.
OrderedJson MetadataJson(const std::string& metadata) {
  OrderedJson doc = OrderedJson::parse(metadata, nullptr, /*allow_exceptions=*/false);
  return doc.is_discarded() ? OrderedJson(metadata) : doc;
}

OrderedJson NameJson(const meshbus::NameInfo& info) {
  return {{"name", info.name},
          {"holder", info.holder.ToString()},
          {"node", info.holder.node},
          {"metadata", MetadataJson(info.metadata)}};
}

void PrintNames(const std::vector<meshbus::NameInfo>& names) {
  Table table({"NAME", "HOLDER", "METADATA"});
  for (const meshbus::NameInfo& n : names) {
    table.Add({n.name, n.holder.ToString(), MetadataText(n.metadata)});
  }
  table.Print(std::cout);
}

struct RegisterArgs {
  std::string name;
  std::optional<std::string> meta;     // JSON
  std::optional<double> hold_seconds;  // none: until SIGINT/SIGTERM
};

int RunRegister(const Global& global, const RegisterArgs& args) {
  InstallStopHandlers();
  // Bad input is refused before a broker is needed.
  if (Status s = meshbus::ValidateRegistryName(args.name); !s.ok()) return Fail(s);
  Result<std::string> metadata = CompactMetadata(args.meta);
  if (!metadata.ok()) return Fail(metadata.status());
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  // Watched from before registering, so that no release of the name is missed.
  if (Result<meshbus::NamesMonitorStart> watch = client->MonitorNames(args.name); !watch.ok()) {
    return Fail(watch.status());
  }
  MemberId holder;
  if (Status s = client->Register(args.name, *metadata, &holder); !s.ok()) {
    if (s.code() == meshbus::Code::kTaken && !holder.node.empty()) {
      return FailWithCode(Status::Taken("'" + args.name + "' is held by " + holder.ToString()));
    }
    return FailWithCode(s);
  }
  const MemberId self = client->self();
  std::cout << "registered " << args.name << " as " << self.ToString() << std::endl;

  // The session holds the name; its end (Close, or this process's death)
  // releases it. A name is an address (`send --name`): show what comes to it.
  Status held = HoldName(*client, args.name, "'" + args.name + "'",
                         DeadlineAfter(args.hold_seconds), [](const meshbus::Delivery& d) {
                           if (const auto* m = std::get_if<meshbus::Message>(&d)) {
                             PrintReceived(*m, false);
                           }
                         });
  if (!held.ok()) return Fail(held);
  if (Status s = client->Close(); !s.ok()) return Fail(s);
  return 0;
}

struct UnregisterArgs {
  std::string name;
};

int RunUnregister(const Global& global, const UnregisterArgs& args) {
  if (Status s = meshbus::ValidateRegistryName(args.name); !s.ok()) return Fail(s);
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Status s = client->Unregister(args.name);
  if (s.code() == meshbus::Code::kNotHolder) {
    // The usual outcome from the CLI, whose session is new: say what would work.
    return FailWithCode(
        Status::NotHolder(s.message() +
                          "; only the holder's session may unregister a name (stop the process "
                          "that registered it, e.g. `meshbus register`)"));
  }
  if (!s.ok()) return FailWithCode(s);
  std::cout << "unregistered " << args.name << std::endl;
  if (Status c = client->Close(); !c.ok()) return Fail(c);
  return 0;
}

struct WhereisArgs {
  std::string name;
  bool consistent = false;
  bool json = false;
};

int RunWhereis(const Global& global, const WhereisArgs& args) {
  if (Status s = meshbus::ValidateRegistryName(args.name); !s.ok()) return Fail(s);
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Result<meshbus::NameInfo> info =
      args.consistent ? client->WhereisConsistent(args.name) : client->Whereis(args.name);
  if (!info.ok()) return FailWithCode(info.status());
  if (args.json) {
    PrintOrderedJson(NameJson(*info));
  } else {
    PrintNames({*info});
  }
  return 0;
}

struct NamesArgs {
  std::string prefix;  // empty: every name
  bool json = false;
};

int RunNames(const Global& global, const NamesArgs& args) {
  if (Status s = meshbus::ValidateNamePrefix(args.prefix); !s.ok()) return Fail(s);
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Result<std::vector<meshbus::NameInfo>> names = client->Names(args.prefix);
  if (!names.ok()) return FailWithCode(names.status());
  if (args.json) {
    OrderedJson doc = OrderedJson::array();
    for (const meshbus::NameInfo& n : *names) doc.push_back(NameJson(n));
    PrintOrderedJson(doc);
  } else {
    PrintNames(*names);
  }
  return 0;
}

struct LeaderArgs {
  bool json = false;
};

int RunLeader(const Global& global, const LeaderArgs& args) {
  Result<Client> client = Connect(global);
  if (!client.ok()) return Fail(client.status());
  Result<meshbus::LeaderInfo> info = client->Leader();
  if (!info.ok()) return FailWithCode(info.status());
  // Replication progress is the leader's: a follower relays it when the
  // leader answered in time, else the fields are blank.
  const bool progress_known =
      info->role == "leader" ||
      std::any_of(info->members.begin(), info->members.end(),
                  [](const meshbus::wire::RaftMemberInfo& m) { return !m.replication.empty(); });

  if (args.json) {
    OrderedJson voters = OrderedJson::array(), learners = OrderedJson::array();
    for (const meshbus::wire::RaftMemberInfo& m : info->members) {
      OrderedJson member = {
          {"node", m.node},
          {"alive", m.alive},
          {"match", progress_known ? OrderedJson(m.match) : OrderedJson(nullptr)},
          {"replication", progress_known && !m.replication.empty() ? OrderedJson(m.replication)
                                                                   : OrderedJson(nullptr)},
          {"active", progress_known ? OrderedJson(m.active) : OrderedJson(nullptr)}};
      (m.voter ? voters : learners).push_back(std::move(member));
    }
    auto or_null = [](const std::string& s) {
      return s.empty() ? OrderedJson(nullptr) : OrderedJson(s);
    };
    PrintOrderedJson(OrderedJson{{"node", info->node},
                                 {"leader", or_null(info->leader)},
                                 {"role", info->role},
                                 {"term", info->term},
                                 {"commit", info->commit},
                                 {"applied", info->applied},
                                 {"problem", or_null(info->problem)},
                                 {"voters", std::move(voters)},
                                 {"learners", std::move(learners)}});
  } else {
    Table summary({"node", info->node});
    summary.Add({"leader", info->leader.empty() ? "none known" : info->leader});
    summary.Add({"role", info->role});
    summary.Add({"term", std::to_string(info->term)});
    summary.Add({"commit", std::to_string(info->commit)});
    summary.Add({"applied", std::to_string(info->applied)});
    if (!info->problem.empty()) summary.Add({"problem", info->problem});
    summary.Print(std::cout);
    std::cout << "\n";
    auto yes_no = [](bool b) { return std::string(b ? "yes" : "no"); };
    Table members({"NODE", "KIND", "ALIVE", "MATCH", "REPLICATION", "ACTIVE"});
    for (const meshbus::wire::RaftMemberInfo& m : info->members) {
      members.Add({m.node, m.voter ? "voter" : "learner", yes_no(m.alive),
                   progress_known ? std::to_string(m.match) : "-",
                   progress_known && !m.replication.empty() ? m.replication : "-",
                   progress_known ? yes_no(m.active) : "-"});
    }
    members.Print(std::cout);
  }
  // Scripts can wait for a leader with `until meshbus leader; do ...`.
  if (info->leader.empty()) {
    return FailWithCode(
        Status::NoLeader(info->node + " knows no registry leader" +
                         (info->problem.empty() ? std::string() : ": " + info->problem)));
  }
  return 0;
}

Command AddNodes(CLI::App& app, const Global& global) {
  auto args = std::make_shared<NodesArgs>();
  CLI::App* cmd = app.add_subcommand("nodes", "The nodes this broker knows, and their state");
  cmd->add_flag("--json", args->json, "Print JSON");
  return Bind(cmd, args, global, RunNodes);
}

Command AddGroups(CLI::App& app, const Global& global) {
  auto args = std::make_shared<GroupsArgs>();
  CLI::App* cmd = app.add_subcommand("groups", "Groups and their member counts");
  cmd->add_option("scope", args->scope, "Only this scope (default: every scope)");
  cmd->add_flag("--json", args->json, "Print JSON");
  return Bind(cmd, args, global, RunGroups);
}

Command AddMembers(CLI::App& app, const Global& global) {
  auto args = std::make_shared<MembersArgs>();
  CLI::App* cmd = app.add_subcommand("members", "The members of a group, one per line");
  cmd->add_option("scope", args->scope, "Scope")->required();
  cmd->add_option("group", args->group, "Group")->required();
  cmd->add_flag("--local", args->local, "Only members on this broker's node");
  cmd->add_flag("--json", args->json, "Print JSON");
  return Bind(cmd, args, global, RunMembers);
}

Command AddJoin(CLI::App& app, const Global& global) {
  auto args = std::make_shared<JoinArgs>();
  CLI::App* cmd = app.add_subcommand(
      "join", "Join a group, print the member id, and stay a member until stopped");
  cmd->add_option("scope", args->scope, "Scope")->required();
  cmd->add_option("group", args->group, "Group")->required();
  cmd->add_option("--hold", args->hold_seconds,
                  "Leave after this many seconds (default: on SIGINT/SIGTERM)")
      ->check(AtLeast(0));
  return Bind(cmd, args, global, RunJoin);
}

Command AddMonitor(CLI::App& app, const Global& global) {
  auto args = std::make_shared<MonitorArgs>();
  CLI::App* cmd = app.add_subcommand(
      "monitor", "Print a scope's or group's members, then every join and leave as it happens");
  cmd->add_option("scope", args->scope, "Scope")->required();
  cmd->add_option("group", args->group, "Group (default: the whole scope)");
  cmd->add_flag("--json", args->json, "Print one JSON object per line");
  cmd->add_option("--count", args->count, "Stop after this many events; exit 1 if fewer came")
      ->check(AtLeast(1));
  cmd->add_option("--timeout", args->timeout_seconds, "Stop after this many seconds")
      ->check(AtLeast(0));
  return Bind(cmd, args, global, RunMonitor);
}

Command AddWait(CLI::App& app, const Global& global) {
  auto args = std::make_shared<WaitArgs>();
  CLI::App* cmd = app.add_subcommand(
      "wait", "Wait until this broker sees at least N nodes alive (itself included)");
  cmd->add_option("--nodes", args->nodes, "How many nodes")->required()->check(AtLeast(1));
  cmd->add_option("--timeout", args->timeout_seconds, "Give up after this many seconds")
      ->capture_default_str()
      ->check(AtLeast(0));
  return Bind(cmd, args, global, RunWait);
}

Command AddStats(CLI::App& app, const Global& global) {
  auto args = std::make_shared<StatsArgs>();
  CLI::App* cmd = app.add_subcommand("stats", "The broker's counters");
  cmd->add_flag("--json", args->json, "Print JSON");
  return Bind(cmd, args, global, RunStats);
}

Command AddPub(CLI::App& app, const Global& global) {
  auto args = std::make_shared<PubArgs>();
  CLI::App* cmd = app.add_subcommand("pub", "Publish a message on a topic, or N numbered ones");
  cmd->add_option("topic", args->topic, "Topic")->required();
  cmd->add_option("message", args->message, "Payload")->required();
  cmd->add_option("--count", args->count, "Publish N messages: MESSAGE followed by 0, 1, ... N-1")
      ->check(AtLeast(1));
  return Bind(cmd, args, global, RunPub);
}

Command AddSub(CLI::App& app, const Global& global) {
  auto args = std::make_shared<SubArgs>();
  CLI::App* cmd = app.add_subcommand(
      "sub", "Subscribe to a topic prefix and print one line per message (TOPIC PAYLOAD)");
  cmd->add_option("prefix", args->prefix, "Topic prefix (\"\": every topic)")->required();
  cmd->add_option("--count", args->count, "Stop after this many messages")->check(AtLeast(1));
  cmd->add_option("--timeout-ms", args->timeout_ms,
                  "Stop after this many ms; with --count, exit 3 if fewer came")
      ->check(AtLeast(0));
  cmd->add_flag("--json", args->json, "Print one JSON object per line");
  return Bind(cmd, args, global, RunSub);
}

Command AddReq(CLI::App& app, const Global& global) {
  auto args = std::make_shared<ReqArgs>();
  CLI::App* cmd = app.add_subcommand(
      "req",
      "Send a request to one member of a group and print its reply (exit 3: timeout, "
      "4: no responders)");
  cmd->add_option("scope", args->scope, "Scope")->required();
  cmd->add_option("group", args->group, "Group")->required();
  cmd->add_option("message", args->message, "Payload")->required();
  cmd->add_option("--timeout", args->timeout_ms, "How long to wait for the reply, in ms")
      ->capture_default_str()
      ->check(AtLeast(1));
  cmd->add_flag("--json", args->json, "Print JSON: the reply and who sent it");
  return Bind(cmd, args, global, RunReq);
}

Command AddServe(CLI::App& app, const Global& global) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Join a group, answer its requests, and print every message it gets");
  cmd->add_option("scope", args->scope, "Scope")->required();
  cmd->add_option("group", args->group, "Group")->required();
  cmd->add_option("--reply", args->reply,
                  "Answer every request with this (default: the request, prefixed with "
                  "\"MEMBER: \")");
  cmd->add_option("--count", args->count, "Stop after answering this many requests")
      ->check(AtLeast(1));
  cmd->add_flag("--json", args->json, "Print one JSON object per line");
  return Bind(cmd, args, global, RunServe);
}

Command AddBroadcast(CLI::App& app, const Global& global) {
  auto args = std::make_shared<BroadcastArgs>();
  CLI::App* cmd =
      app.add_subcommand("broadcast", "Send a message to every member of a group, once each");
  cmd->add_option("scope", args->scope, "Scope")->required();
  cmd->add_option("group", args->group, "Group")->required();
  cmd->add_option("message", args->message, "Payload")->required();
  return Bind(cmd, args, global, RunBroadcast);
}

Command AddDispatch(CLI::App& app, const Global& global) {
  auto args = std::make_shared<DispatchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "dispatch",
      "Send a message to one member of a group, and print the member that got it (exit 4: "
      "no members)");
  cmd->add_option("scope", args->scope, "Scope")->required();
  cmd->add_option("group", args->group, "Group")->required();
  cmd->add_option("message", args->message, "Payload")->required();
  cmd->add_option("--count", args->count,
                  "Dispatch N messages: MESSAGE followed by 0, 1, ... N-1; one line each")
      ->check(AtLeast(1));
  return Bind(cmd, args, global, RunDispatch);
}

Command AddSend(CLI::App& app, const Global& global) {
  auto args = std::make_shared<SendArgs>();
  CLI::App* cmd = app.add_subcommand(
      "send",
      "Send a message directly to one member, or to the holder of a name (--name: prints the "
      "holder; exit 5 if nobody holds it)");
  cmd->add_option("member_and_message", args->words,
                  "MEMBER_ID MESSAGE (the id as `join` and `members` print it); with --name, "
                  "MESSAGE only")
      ->required();
  cmd->add_option("--name", args->name, "Send to the member holding this registered name");
  cmd->callback([args] { CheckSendWords(*args); });
  return Bind(cmd, args, global, RunSend);
}

Command AddRegister(CLI::App& app, const Global& global) {
  auto args = std::make_shared<RegisterArgs>();
  CLI::App* cmd = app.add_subcommand(
      "register",
      "Register a unique name for this process, hold it until stopped, and print the messages "
      "sent to it (exit 5: taken, 6: no leader)");
  cmd->add_option("name", args->name, "Name")->required();
  cmd->add_option("--meta", args->meta, "Metadata: a JSON document, stored compact");
  cmd->add_option("--hold", args->hold_seconds,
                  "Release after this many seconds (default: on SIGINT/SIGTERM)")
      ->check(AtLeast(0));
  return Bind(cmd, args, global, RunRegister);
}

Command AddUnregister(CLI::App& app, const Global& global) {
  auto args = std::make_shared<UnregisterArgs>();
  CLI::App* cmd = app.add_subcommand(
      "unregister",
      "Release a name held by this CLI's session: for any other holder it says not_holder "
      "(exit 5)");
  cmd->add_option("name", args->name, "Name")->required();
  return Bind(cmd, args, global, RunUnregister);
}

Command AddWhereis(CLI::App& app, const Global& global) {
  auto args = std::make_shared<WhereisArgs>();
  CLI::App* cmd = app.add_subcommand(
      "whereis", "Who holds a name, and its metadata (exit 5: nobody, 6: no leader)");
  cmd->add_option("name", args->name, "Name")->required();
  cmd->add_flag("--consistent", args->consistent,
                "Ask the leader (linearizable) rather than this broker's copy, which may lag");
  cmd->add_flag("--json", args->json, "Print JSON");
  return Bind(cmd, args, global, RunWhereis);
}

Command AddNames(CLI::App& app, const Global& global) {
  auto args = std::make_shared<NamesArgs>();
  CLI::App* cmd =
      app.add_subcommand("names", "Registered names with their holders, from this broker's copy");
  cmd->add_option("prefix", args->prefix, "Only names starting with this (default: every name)");
  cmd->add_flag("--json", args->json, "Print JSON");
  return Bind(cmd, args, global, RunNames);
}

Command AddLeader(CLI::App& app, const Global& global) {
  auto args = std::make_shared<LeaderArgs>();
  CLI::App* cmd = app.add_subcommand(
      "leader",
      "The registry's leader, term and voters as this broker sees them (exit 6: no leader known)");
  cmd->add_flag("--json", args->json, "Print JSON");
  return Bind(cmd, args, global, RunLeader);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"meshbus: look at and take part in a meshbus mesh through one broker"};
  Global global;
  app.add_option("-b,--broker", global.broker,
                 "The broker's client endpoint ($MESHBUS_BROKER or the local default)")
      ->capture_default_str();
  app.add_option("--timeout", global.timeout_ms, "Per-call and connect timeout in ms")
      ->capture_default_str()
      ->check(AtLeast(1));
  app.require_subcommand(1);

  std::vector<Command> commands = {
      AddNodes(app, global),      AddGroups(app, global),  AddMembers(app, global),
      AddJoin(app, global),       AddMonitor(app, global), AddWait(app, global),
      AddStats(app, global),      AddPub(app, global),     AddSub(app, global),
      AddReq(app, global),        AddServe(app, global),   AddBroadcast(app, global),
      AddDispatch(app, global),   AddSend(app, global),    AddRegister(app, global),
      AddUnregister(app, global), AddWhereis(app, global), AddNames(app, global),
      AddLeader(app, global),
  };
  for (Command& c : AddEventStoreCommands(app, global)) commands.push_back(std::move(c));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints help, or the usage error
    return rc == 0 ? 0 : 2;
  }
  for (const Command& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  return 2;  // unreachable: require_subcommand(1)
}
