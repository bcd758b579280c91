#include "broker/options.h"

#include "topics/names.h"

namespace meshbus {

std::string DefaultClientEndpoint(const std::string& node_name) {
  return "ipc:///tmp/meshbus-" + node_name + ".ipc";
}

std::string BrokerOptions::ClientEndpoint() const {
  return client_endpoint.empty() ? DefaultClientEndpoint(node_name) : client_endpoint;
}

Status BrokerOptions::Validate() const {
  if (Status s = ValidateNodeName(node_name); !s.ok()) return s;
  if (listen.rfind("tcp://", 0) != 0) {
    return Status::InvalidArgument("listen address '" + listen + "' must be tcp://HOST:PORT");
  }
  if (Status s = ValidateEndpoint(listen); !s.ok()) return s;
  for (const std::string& seed : seeds) {
    if (Status s = ValidateEndpoint(seed); !s.ok())
      return Status::InvalidArgument("seed: " + s.message());
  }
  if (Status s = ValidateEndpoint(ClientEndpoint()); !s.ok()) {
    return Status::InvalidArgument("client endpoint: " + s.message());
  }
  auto positive = [](std::chrono::milliseconds d, const char* what) {
    return d.count() > 0 ? Status::Ok()
                         : Status::InvalidArgument(std::string(what) + " must be positive");
  };
  for (Status s :
       {positive(heartbeat_interval, "heartbeat interval"),
        positive(suspicion_timeout, "suspicion timeout"), positive(probe_timeout, "probe timeout"),
        positive(client_heartbeat_interval, "client heartbeat interval"),
        positive(session_timeout, "session timeout"),
        positive(hello_retry_interval, "hello retry interval")}) {
    if (!s.ok()) return s;
  }
  if (suspicion_timeout <= heartbeat_interval) {
    return Status::InvalidArgument("suspicion timeout must be longer than the heartbeat interval");
  }
  if (session_timeout <= client_heartbeat_interval) {
    return Status::InvalidArgument(
        "session timeout must be longer than the client heartbeat interval");
  }
  if (client_queue_messages < kMinClientQueueMessages) {
    return Status::InvalidArgument("client queue must hold at least " +
                                   std::to_string(kMinClientQueueMessages) + " messages");
  }
  if (max_message_bytes == 0 || max_message_bytes > (64u << 20)) {
    return Status::InvalidArgument("max message size must be 1 byte to 64 MiB");
  }
  if (client_queue_bytes < 2 * max_message_bytes) {
    return Status::InvalidArgument(
        "client queue must hold at least two messages of the maximum size (" +
        std::to_string(2 * max_message_bytes) + " bytes)");
  }
  if (voters.size() > 15) return Status::InvalidArgument("at most 15 voters");
  for (size_t i = 0; i < voters.size(); ++i) {
    if (Status s = ValidateNodeName(voters[i]); !s.ok())
      return Status::InvalidArgument("voter: " + s.message());
    for (size_t j = 0; j < i; ++j) {
      if (voters[j] == voters[i])
        return Status::InvalidArgument("voter '" + voters[i] + "' is listed twice");
    }
  }
  if (voters.size() > 1 && data_dir.empty()) {
    return Status::InvalidArgument(
        "a registry of several voters needs --data-dir: a voter that forgets its vote or log "
        "after a restart could elect two leaders or lose acknowledged names");
  }
  if (raft_tick.count() <= 0) return Status::InvalidArgument("raft tick must be positive");
  if (raft_snapshot_entries == 0)
    return Status::InvalidArgument("raft snapshot entries must be positive");
  if (log_level != "debug" && log_level != "info" && log_level != "warn" && log_level != "error") {
    return Status::InvalidArgument("log level must be debug, info, warn or error");
  }
  return Status::Ok();
}

}  // namespace meshbus
