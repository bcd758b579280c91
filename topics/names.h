// Names of things in the mesh and their validation: node names, scopes,
// groups, and member ids. Pure functions and value types; thread-safe.
//
// A member (the analogue of an Erlang pid) is one client session on one
// incarnation of one node. Its text form is "<node>.<incarnation hex>.<session>",
// e.g. "n1.18a3f5b2c9d4e.17": a node name has no dots, so the form parses
// back unambiguously.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "topics/status.h"

namespace meshbus {

inline constexpr size_t kMaxNodeNameBytes = 64;
inline constexpr size_t kMaxScopeBytes = 255;
inline constexpr size_t kMaxGroupBytes = 255;
inline constexpr size_t kMaxEndpointBytes = 255;
inline constexpr size_t kMaxTopicBytes = 255;
inline constexpr size_t kMaxRegistryNameBytes = 255;
inline constexpr size_t kMaxNameMetadataBytes = 4096;
// A registry record's value (its key is validated like a name).
inline constexpr size_t kMaxRecordValueBytes = 64u << 10;

// Node names: 1..64 of [A-Za-z0-9_-].
Status ValidateNodeName(std::string_view name);
// Scopes and groups: 1..255 bytes, printable ASCII or UTF-8, no control bytes
// (they are printed by the CLI and used as topic parts).
Status ValidateScope(std::string_view scope);
Status ValidateGroup(std::string_view group);
// Publish topics: 1..255 bytes, no control bytes. Subscriptions are prefixes
// of topics (ZeroMQ semantics); the empty prefix subscribes to everything.
Status ValidateTopic(std::string_view topic);
Status ValidateTopicPrefix(std::string_view prefix);
// Registered names (the registry's keys): 1..255 bytes, printable ASCII or
// UTF-8, no control bytes (the CLI prints them). Their metadata: any bytes,
// at most kMaxNameMetadataBytes. A name prefix (listings, monitors) may be "".
Status ValidateRegistryName(std::string_view name);
Status ValidateNamePrefix(std::string_view prefix);
Status ValidateNameMetadata(std::string_view metadata);
// Registry records: replicated key/value entries that no member owns. Keys
// follow the rules of names (a key prefix may be ""); a value is any bytes, at
// most kMaxRecordValueBytes (TooLarge beyond).
Status ValidateRecordKey(std::string_view key);
Status ValidateRecordKeyPrefix(std::string_view prefix);
Status ValidateRecordValue(std::string_view value);
// A ZeroMQ endpoint we are willing to connect to: tcp:// or ipc:// or inproc://.
Status ValidateEndpoint(std::string_view endpoint);

struct MemberId {
  std::string node;
  uint64_t incarnation = 0;
  uint64_t session = 0;

  std::string ToString() const;
  static std::optional<MemberId> Parse(std::string_view text);

  // The numbers first: they tell most members apart without a string compare.
  friend bool operator==(const MemberId& a, const MemberId& b) {
    return a.session == b.session && a.incarnation == b.incarnation && a.node == b.node;
  }
  friend auto operator<=>(const MemberId&, const MemberId&) = default;
};

// The topics of the data channel, which ZeroMQ filters on. Publishes are
// prefix-matched, so their topic is open-ended; a group's broadcasts end in a
// terminator, so that group "orders" never matches group "orders2".
inline constexpr char kPublishTopicMark = 'P';
inline constexpr char kBroadcastTopicMark = 'B';
// Subscription tickets (see wire::PeerSubscriptionCheck): never a message topic.
inline constexpr char kTicketTopicMark = 'Z';
std::string PublishDataTopic(std::string_view topic_or_prefix);
std::string BroadcastDataTopic(std::string_view scope, std::string_view group);

// This host's name made into a valid node name (up to the first dot, other
// characters replaced by '-'): the default of meshbusd --node.
std::string DefaultNodeName();

// Hex rendering of an incarnation, as used in member ids and by the CLI.
std::string IncarnationHex(uint64_t incarnation);

}  // namespace meshbus
