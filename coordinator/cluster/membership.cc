// Membership: one mutex guards the map; the reaper wakes every check_interval (or on
// shutdown) and flips expired workers to dead, notifying waiters.
#include "coordinator/cluster/membership.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"

namespace strata {

using Clock = std::chrono::steady_clock;

Membership::Membership(MembershipOptions options) : options_(options) {
  STRATA_CHECK(options_.heartbeat_interval.count() > 0 && options_.lease.count() > 0 &&
               options_.check_interval.count() > 0)
      << "MembershipOptions durations must be positive";
  reaper_ = std::thread([this] { ReapLoop(); });
}

Membership::~Membership() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  reaper_.join();
}

uint64_t Membership::Register(uint64_t requested_id, const std::string& host,
                              DeviceInventory inventory) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = 0;
  auto requested = workers_.find(requested_id);
  if (requested_id != 0 && (requested == workers_.end() || requested->second.host == host)) {
    id = requested_id;
  } else {
    for (const auto& [known_id, info] : workers_) {
      if (info.host == host) id = known_id;
    }
  }
  // A fresh id, or a reused one: either way no other entry may keep this host.
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->first != id && it->second.host == host) {
      tokens_.erase(it->first);
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  if (id == 0) id = next_id_;
  next_id_ = std::max(next_id_, id + 1);

  WorkerInfo& info = workers_[id];
  info.id = id;
  info.host = host;
  info.inventory = std::move(inventory);
  info.status = "registered";
  info.alive = true;
  info.last_heartbeat = Clock::now();
  std::random_device random;  // the kernel's CSPRNG
  std::string& token = tokens_[id];
  token.resize(16);
  for (size_t i = 0; i < token.size(); i += 4) {
    const uint32_t r = random();
    for (size_t b = 0; b < 4; ++b) token[i + b] = static_cast<char>((r >> (8 * b)) & 0xff);
  }
  STRATA_LOG_INFO("worker {} registered from {} ({} x {})", id, host, info.inventory.device_count,
                  DeviceKindName(info.inventory.device_kind));
  changed_.notify_all();
  return id;
}

std::string Membership::SessionToken(uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tokens_.find(id);
  return it == tokens_.end() ? std::string() : it->second;
}

bool Membership::Admits(uint64_t id, std::string_view token) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto worker = workers_.find(id);
  auto known = tokens_.find(id);
  if (worker == workers_.end() || !worker->second.alive || known == tokens_.end() ||
      known->second.size() != token.size()) {
    return false;
  }
  unsigned char differ = 0;  // constant time in the token's bytes
  for (size_t i = 0; i < token.size(); ++i) {
    differ |= static_cast<unsigned char>(known->second[i] ^ token[i]);
  }
  return differ == 0;
}

bool Membership::Heartbeat(uint64_t id, const std::string& status) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = workers_.find(id);
  if (it == workers_.end() || !it->second.alive) return false;
  it->second.last_heartbeat = Clock::now();
  it->second.status = status;
  return true;
}

void Membership::MarkDead(uint64_t id, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = workers_.find(id);
  if (it == workers_.end() || !it->second.alive) return;
  it->second.alive = false;
  STRATA_LOG_WARN("worker {} ({}) marked dead: {}", id, it->second.host, reason);
  ForgetOldestDeadLocked();
  changed_.notify_all();
}

void Membership::ForgetOldestDeadLocked() {
  std::vector<std::pair<Clock::time_point, uint64_t>> dead;  // (last seen, id)
  for (const auto& [id, info] : workers_) {
    if (!info.alive) dead.emplace_back(info.last_heartbeat, id);
  }
  if (dead.size() <= options_.max_dead_listed) return;
  std::sort(dead.begin(), dead.end());
  for (size_t i = 0; i < dead.size() - options_.max_dead_listed; ++i) {
    workers_.erase(dead[i].second);
    tokens_.erase(dead[i].second);
  }
}

int Membership::AliveCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return AliveCountLocked();
}

int Membership::AliveCountLocked() const {
  int alive = 0;
  for (const auto& [id, info] : workers_) alive += info.alive ? 1 : 0;
  return alive;
}

std::vector<WorkerInfo> Membership::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<WorkerInfo> out;
  out.reserve(workers_.size());
  for (const auto& [id, info] : workers_) out.push_back(info);
  return out;
}

absl::Status Membership::WaitForAlive(int count, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  const bool done = changed_.wait_for(
      lock, timeout, [&] { return stopping_ || AliveCountLocked() >= count; });
  if (stopping_) return absl::CancelledError("membership is shutting down");
  if (!done) {
    return absl::DeadlineExceededError(absl::StrCat("waited ", timeout.count(), " ms for ", count,
                                                    " workers alive; ", AliveCountLocked(),
                                                    " are"));
  }
  return absl::OkStatus();
}

void Membership::ReapLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    changed_.wait_for(lock, options_.check_interval);
    if (stopping_) break;
    const Clock::time_point now = Clock::now();
    bool any = false;
    for (auto& [id, info] : workers_) {
      if (info.alive && now - info.last_heartbeat > options_.lease) {
        info.alive = false;
        any = true;
        STRATA_LOG_WARN("worker {} ({}) missed its {} ms lease: marked dead", id, info.host,
                        options_.lease.count());
      }
    }
    if (any) {
      ForgetOldestDeadLocked();
      changed_.notify_all();
    }
  }
}

}  // namespace strata
