// meshbusd: the meshbus broker daemon. Parses flags (or a config file), starts
// a Broker, and stops it gracefully on SIGINT or SIGTERM.
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "broker/broker.h"
#include "topics/names.h"

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "meshbusd: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  meshbus::BrokerOptions o;
  o.node_name = meshbus::DefaultNodeName();
  int heartbeat_ms = int(o.heartbeat_interval.count());
  int suspicion_ms = int(o.suspicion_timeout.count());
  int probe_ms = int(o.probe_timeout.count());
  int session_timeout_ms = int(o.session_timeout.count());
  int raft_tick_ms = int(o.raft_tick.count());

  CLI::App app{"meshbusd: the meshbus broker, one per node, meshed with its peers over ZeroMQ"};
  app.set_config("--config", "",
                 "Read these settings from a TOML/INI file (keys as the long flag names)");
  app.add_option("--node", o.node_name,
                 "Node name, unique in the mesh ([A-Za-z0-9_-], default: host name)")
      ->capture_default_str();
  app.add_option("--listen", o.listen,
                 "Address peers reach this broker at (its calls socket), tcp://HOST:PORT")
      ->capture_default_str();
  app.add_option("--advertise", o.advertise_host,
                 "Host name or address peers should dial, if --listen binds 0.0.0.0");
  app.add_option("--seed", o.seeds,
                 "A peer's --listen address to meet at start (repeatable); the rest of the mesh is "
                 "learnt from it");
  app.add_option("--client", o.client_endpoint,
                 "Endpoint SDK clients connect to (default ipc:///tmp/meshbus-NODE.ipc)");
  app.add_option("--heartbeat-ms", heartbeat_ms, "Heartbeat interval to peers")
      ->capture_default_str()
      ->check(CLI::Range(1, 60000));
  app.add_option("--suspicion-ms", suspicion_ms, "Silence after which a peer is probed")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  app.add_option("--probe-ms", probe_ms,
                 "Time a suspected peer has to answer its probe before it is declared dead")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  app.add_option("--session-timeout-ms", session_timeout_ms,
                 "Silence after which a client session ends")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  app.add_option("--client-queue", o.client_queue_messages,
                 "Messages queued per client before deliveries are counted as lost")
      ->capture_default_str()
      ->check(CLI::Range(meshbus::kMinClientQueueMessages, 100000000));
  app.add_option("--client-queue-bytes", o.client_queue_bytes,
                 "Bytes of deliveries a client may have unread before further deliveries to it "
                 "are counted as lost (it is told how many)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t(1), uint64_t(1) << 40));
  app.add_option("--max-message-bytes", o.max_message_bytes,
                 "The largest payload a client may send; larger ones are refused with an error")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t(1), uint64_t(64) << 20));
  app.add_option("--voters", o.voters,
                 "The name registry's voting nodes, by node name, comma-separated "
                 "(n1,n2,n3): the same list on every broker, including those not in it (they "
                 "follow without voting). None: a one-node registry without --seed, else follow "
                 "the registry of the mesh")
      ->delimiter(',');
  app.add_option("--data-dir", o.data_dir,
                 "Directory for the registry's term, vote, log and snapshots, one per broker "
                 "(created if missing, not its parents). Required with several --voters; "
                 "without it the registry's state is kept in memory only");
  app.add_option("--raft-tick-ms", raft_tick_ms,
                 "One tick of the registry's consensus: a leader heartbeats every 2 ticks, a "
                 "follower that hears nothing for 10 to 20 ticks starts an election")
      ->capture_default_str()
      ->check(CLI::Range(1, 60000));
  app.add_option("--raft-snapshot-entries", o.raft_snapshot_entries,
                 "Registry log entries kept after a snapshot before the next snapshot is taken")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t(1), uint64_t(1) << 40));
  app.add_option("--log-level", o.log_level, "debug, info, warn or error")
      ->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return Fail(std::string(e.what()) + " (see --help)");
  }
  o.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);
  o.suspicion_timeout = std::chrono::milliseconds(suspicion_ms);
  o.probe_timeout = std::chrono::milliseconds(probe_ms);
  o.session_timeout = std::chrono::milliseconds(session_timeout_ms);
  o.raft_tick = std::chrono::milliseconds(raft_tick_ms);

  // Block the stop signals in every thread; main waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  meshbus::Result<std::unique_ptr<meshbus::Broker>> broker = meshbus::Broker::Start(o);
  if (!broker.ok()) return Fail(broker.status().message());

  int sig = 0;
  sigwait(&stop_signals, &sig);
  broker.value()->Stop(/*graceful=*/true);
  return 0;
}
