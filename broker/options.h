// BrokerOptions: everything that configures one broker, with the defaults a
// LAN wants. A plain value; thread-compatible. meshbusd fills it from flags
// and a config file; tests fill it directly.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "topics/status.h"

namespace meshbus {

// Below this, libzmq's flow control was seen refusing a reply to a client
// that reads every reply, while another client's queue was full.
inline constexpr int kMinClientQueueMessages = 100;

struct BrokerOptions {
  // Unique in the mesh: [A-Za-z0-9_-]{1,64}.
  std::string node_name;
  // Where peers reach this broker's calls ROUTER. The control and data PUB
  // sockets bind on the same host, on ephemeral ports that peers learn in the
  // hello exchange. "tcp://127.0.0.1:*" picks a free port (for tests).
  std::string listen = "tcp://127.0.0.1:7100";
  // The host peers should dial, when `listen` binds a wildcard address.
  std::string advertise_host;
  // Calls endpoints of peers to meet at start; the rest of the mesh is learnt
  // from them.
  std::vector<std::string> seeds;
  // Where SDK clients connect. Empty: ipc:///tmp/meshbus-<node>.ipc.
  std::string client_endpoint;

  std::chrono::milliseconds heartbeat_interval{100};
  // Silence after which a peer is probed; it is dead if the probe also goes
  // unanswered for probe_timeout. Defaults: dead within 0.9 s of silence.
  std::chrono::milliseconds suspicion_timeout{500};
  std::chrono::milliseconds probe_timeout{400};
  // Client sessions: the SDK heartbeats at this interval; a session silent
  // for session_timeout ends.
  std::chrono::milliseconds client_heartbeat_interval{200};
  std::chrono::milliseconds session_timeout{1500};
  // How often unanswered hellos (seeds, peers that died) are tried again.
  std::chrono::milliseconds hello_retry_interval{500};
  // Per-client outbound queue in messages (ZeroMQ high-water mark); beyond
  // it deliveries are counted as lost and the client gets a gap notice. The
  // bound that matters is client_queue_bytes; this one only caps how many
  // small messages that many bytes may be.
  int client_queue_messages = 1000000;
  // Per-client outbound queue in bytes: deliveries the client has not yet
  // consumed (the SDK reports what it consumed). Beyond it, deliveries are
  // lost, counted, and reported to the client by a gap notice; replies wait.
  uint64_t client_queue_bytes = 16u << 20;
  // The largest payload a client may send; larger ones get kTooLarge.
  uint64_t max_message_bytes = 1u << 20;

  // The name registry (DESIGN.md §5). The voting members of its Raft group,
  // by node name: the same list on every broker (brokers compare it when
  // they meet; one whose list differs takes no part, and says why). Empty:
  // with no seeds this broker is a one-node registry of its own; with seeds,
  // it follows the registry of the brokers it meets, without voting.
  std::vector<std::string> voters;
  // Where this broker keeps the registry's term, vote, log and snapshots.
  // Required when `voters` lists more than one node: a voter that forgot its
  // vote or its log could make two leaders or lose acknowledged names.
  // Empty otherwise: kept in memory only (a follower catches up again from
  // the leader after a restart).
  std::string data_dir;
  // One tick of the registry's consensus. A leader heartbeats every 2 ticks;
  // a follower that hears nothing for 10 to 20 ticks starts an election.
  std::chrono::milliseconds raft_tick{50};
  // Log entries kept after a snapshot before the next one is taken.
  uint64_t raft_snapshot_entries = 10000;

  std::string log_level = "info";  // debug, info, warn, error

  // A one-line explanation of the first thing wrong, if anything.
  Status Validate() const;
  // The client endpoint, with the default filled in.
  std::string ClientEndpoint() const;
};

std::string DefaultClientEndpoint(const std::string& node_name);

}  // namespace meshbus
