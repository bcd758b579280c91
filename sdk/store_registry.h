// The event store's store registry (DESIGN.md §6, issue #5), on a Client:
// which stores are announced on which nodes, with their configs. Functions,
// not a second session; each is as thread-safe as the Client it is given.
//
// An announcement is a name in the consistent registry,
// "$es/stores/<store>/<node>", held by the announcing session, with the store
// config and the announce time as its metadata. So an entry is keyed by
// (store, node); every broker has every entry (a late joiner too, from the
// registry's log); an entry is retired when its session unannounces it or
// ends, or when its node is declared dead; and announcing again from the same
// session replaces the entry. Reads are from the local broker's copy, which
// may lag the registry's leader by a replication round.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sdk/client.h"
#include "topics/eventstore.h"

namespace meshbus::eventstore {

struct StoreEntry {
  StoreConfig config;
  std::string node;              // where it was announced
  MemberId announcer;            // the session that holds the announcement
  int64_t registered_at_us = 0;  // wall clock at the announce, µs since the epoch
};

// Announces (or re-announces, replacing the entry) the store on this
// client's node. kTaken when another session on this node holds the
// announcement; kTooLarge when the config does not fit a name's metadata;
// kNoLeader in a minority partition (nothing announced).
Status AnnounceStore(Client& client, const StoreConfig& config);
// Retires this node's entry of the store. kNotFound when it is not
// announced here; kNotHolder when another session announced it.
Status UnannounceStore(Client& client, const std::string& store_id);

// Every entry, sorted by store and node.
Result<std::vector<StoreEntry>> ListStores(Client& client);
Result<std::vector<StoreEntry>> ListStoresOnNode(Client& client, const std::string& node);
// The store's entries, one per node it is announced on; kNotFound when none.
Result<std::vector<StoreEntry>> StoreInfo(Client& client, const std::string& store_id);

enum class StoreEventKind { kAnnounced, kRetired };
std::string_view StoreEventKindName(StoreEventKind kind);  // "announced", "retired"
struct StoreEvent {
  uint64_t ref = 0;
  StoreEventKind kind = StoreEventKind::kAnnounced;
  StoreEntry entry;
};
struct StoreMonitorStart {
  uint64_t ref = 0;
  std::vector<StoreEntry> stores;  // every entry at the start
};
// The entries now, then, through Receive(), a NameEvent for every announce
// (re-announces too) and retirement, which AsStoreEvent reads. Demonitor(ref)
// ends it.
Result<StoreMonitorStart> SubscribeStoreEvents(Client& client);
// kNotFound: not an event of the store registry.
Result<StoreEvent> AsStoreEvent(const NameEvent& event);

}  // namespace meshbus::eventstore
