// Client: a process's session with its local meshbus broker, and the whole
// API of the mesh: process groups (pg-style) and monitors, and a view of the
// nodes. Create it with Client::Connect; it is a move-only owner of its
// sockets and of one background thread that keeps the session alive with
// heartbeats, so a process that is busy for a while does not lose its
// memberships. Its session (and so its memberships and monitors) ends when the
// Client is destroyed or Close()d, or when the process dies.
//
// Calls are synchronous, each with a deadline. Deliveries (monitor events,
// gap notices) come on the same ordered channel as replies and are read, in
// the order the broker sent them, with Receive().
//
// Not thread-safe: use one Client from one thread at a time, like a ZeroMQ
// socket; give each thread its own Client if several need the mesh.
// No exception leaves a Client: every error is a Status.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "topics/names.h"
#include "topics/status.h"
#include "topics/wire.h"

namespace meshbus {

struct ClientOptions {
  // The broker's client endpoint; empty: ipc:///tmp/meshbus-<hostname>.ipc,
  // the default of a meshbusd started without --node (see DefaultBrokerEndpoint).
  std::string endpoint;
  std::string name = "client";  // shown by the broker in its logs
  std::chrono::milliseconds call_timeout{3000};
  std::chrono::milliseconds connect_timeout{3000};
};

// The default broker endpoint: $MESHBUS_BROKER if set, else the default
// client endpoint of a broker named after this host.
std::string DefaultBrokerEndpoint();

using GroupMembers = wire::GroupMembers;
using GroupCount = wire::GroupCount;
using NodeInfo = wire::NodeInfo;
using EventKind = wire::EventKind;

// A change in a monitored scope or group: members that joined or left
// (a member twice when it joined twice). Leaves are reported for explicit
// leaves, ended sessions, purged nodes and resyncs alike.
struct MonitorEvent {
  uint64_t ref = 0;
  EventKind kind = EventKind::kJoin;
  std::string scope, group;
  std::vector<MemberId> members;
};
// The broker could not queue `lost` deliveries for this client (it was too
// slow to read them); they are gone, and this says how many.
struct GapNotice {
  uint64_t lost = 0;
};
using Delivery = std::variant<MonitorEvent, GapNotice>;

// What a monitor starts from: its ref, and the members at that moment.
struct MonitorStart {
  uint64_t ref = 0;
  std::vector<GroupMembers> groups;
};

class Client {
 public:
  static Result<Client> Connect(ClientOptions options = {});
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  // Ends the session: memberships are left and monitors removed everywhere.
  Status Close();

  // This session's member id, e.g. "n1.18a3f5b2c9d4e.17".
  const MemberId& self() const;
  const std::string& node() const { return self().node; }

  // ---- process groups ----
  // Joining twice counts twice; leave undoes one join.
  Status Join(const std::string& scope, const std::string& group);
  // Joins many groups of one scope in one call (one round trip, one delta
  // to the mesh). All or nothing: if any name is invalid, none is joined.
  // At most wire::kMaxJoinManyGroups (10,000) groups per call.
  Status JoinMany(const std::string& scope, const std::vector<std::string>& groups);
  // kNotJoined when this session is not a member.
  Status Leave(const std::string& scope, const std::string& group);
  Result<std::vector<MemberId>> Members(const std::string& scope, const std::string& group);
  Result<std::vector<MemberId>> LocalMembers(const std::string& scope, const std::string& group);
  Result<std::vector<std::string>> WhichGroups(const std::string& scope);
  Result<std::vector<std::string>> WhichLocalGroups(const std::string& scope);
  // Groups with their member counts; every scope when scope is empty.
  Result<std::vector<GroupCount>> Groups(const std::string& scope = "");

  // Monitors: the current members now, then MonitorEvents through Receive().
  Result<MonitorStart> MonitorScope(const std::string& scope);
  Result<MonitorStart> Monitor(const std::string& scope, const std::string& group);
  Status Demonitor(uint64_t ref);

  // ---- the mesh ----
  Result<std::vector<NodeInfo>> Nodes();
  Result<std::map<std::string, uint64_t>> Stats();

  // The next delivery, waiting up to `timeout`; kTimeout when none came.
  Result<Delivery> Receive(std::chrono::milliseconds timeout);
  // Hands every delivery that arrives within `timeout` to `handler`, in
  // order, on this thread; returns how many it handled, or the error that
  // stopped it (kTimeout is not an error here).
  Result<size_t> Dispatch(const std::function<void(const Delivery&)>& handler,
                          std::chrono::milliseconds timeout);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshbus
