// Package coordination keeps the trigger's decision-making memory in etcd so
// that two or three replicas act exactly once: a replica claims an object
// with a compare-and-create transaction bound to its session lease, and rate
// limits and concurrency slots are counted in shared keys.
//
// Every write is fenced: it commits only while the writer's session lease is
// alive, so a replica whose lease lapsed cannot change shared state, and its
// claims vanish with the lease for another replica to take. The package
// knows nothing of the trigger's records; values are opaque bytes.
//
// Keys under Config.Prefix: members/<owner> (one per live session, bound to
// its lease), claims/<key> (value: the owner ID, bound to the owner's
// lease), data/<key> (records, durable), rates/<key> and slots/<key>
// (shared counters, durable, updated by compare-and-swap).
//
// Hand-over: a record that says an action is in flight names its owner; when
// OwnerAlive(owner) is false (or MembersGone reports it), the owner's claims
// are gone and another replica adopts the action by claiming its object.
package coordination

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// Defaults for the zero values of Config.
const (
	DefaultPrefix         = "/veeam_failover_exporter/"
	DefaultLeaseTTL       = 15 * time.Second
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
)

// Errors callers tell apart with errors.Is.
var (
	// ErrNoSession: there is no live session lease (etcd unreachable, or the
	// lease lapsed and a new one is not granted yet). Nothing was written.
	ErrNoSession = errors.New("no live etcd session")
	// ErrLeaseLost: the write was refused because this replica's lease is
	// gone; whatever it claimed may already belong to another replica.
	ErrLeaseLost = errors.New("etcd session lease lost")
	// ErrNotOwner: the claim to release is not held by this session.
	ErrNotOwner = errors.New("claim not held by this replica")
	// ErrContention: a shared counter kept changing under this replica
	// until the attempts ran out; nothing was written.
	ErrContention = errors.New("too much contention on a shared key")
)

// Config says how to reach etcd and how long a replica's lease lives.
type Config struct {
	Endpoints []string
	// Prefix is prepended to every key; it ends with "/" (added if not).
	Prefix string
	// TLS, if not nil, is used for every connection (build it with
	// prometheus/common/config.NewTLSConfig).
	TLS      *tls.Config
	Username string
	Password string // never logged nor put in errors
	// Name identifies the replica to humans (default: the host name); the
	// session's owner ID is Name plus the lease ID.
	Name string
	// LeaseTTL is how long claims outlive a replica that stopped renewing
	// them: the hand-over delay after a crash. Whole seconds, at least 1s.
	LeaseTTL       time.Duration
	DialTimeout    time.Duration
	RequestTimeout time.Duration // bound on each operation
	HealthTimeout  time.Duration // bound on Up and Health
}

// Keys under the prefix. Caller keys live under data/ and claims/, so no
// caller key can collide with the package's own.
const (
	dataDir    = "data/"
	claimsDir  = "claims/"
	membersDir = "members/"
	ratesDir   = "rates/"
	slotsDir   = "slots/"
)

// Store is one replica's connection to the shared state.
type Store struct {
	cfg    Config
	logger *slog.Logger

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the session loop returned

	mu      sync.Mutex
	cli     *clientv3.Client
	sess    *concurrency.Session
	id      string // owner ID of sess
	lastErr error  // why the last attempt to get a session failed
	closing bool   // Close has taken cli and sess: connect keeps nothing
}

// Open validates cfg and connects. A bad configuration is an error; etcd
// being unreachable is not: Open tries once within ctx and then keeps trying
// in the background, and until a session exists every operation fails with
// ErrNoSession and Up reports false. Close releases everything.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("coordination: no etcd endpoints")
	}
	for _, e := range cfg.Endpoints {
		if strings.TrimSpace(e) == "" {
			return nil, errors.New("coordination: empty etcd endpoint")
		}
	}
	if cfg.Password != "" && cfg.Username == "" {
		return nil, errors.New("coordination: etcd password without username")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.LeaseTTL < time.Second || cfg.LeaseTTL%time.Second != 0 {
		return nil, fmt.Errorf("coordination: lease TTL %s: want whole seconds, at least 1s", cfg.LeaseTTL)
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.HealthTimeout == 0 {
		cfg.HealthTimeout = DefaultHealthTimeout
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
		if cfg.Name == "" {
			cfg.Name = "replica"
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{cfg: cfg, logger: logger, done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.connect(ctx); err != nil {
		logger.Warn("etcd coordination not ready, retrying in the background", "err", err)
		s.setErr(err)
	}
	go s.loop()
	return s, nil
}

// connect makes the client if there is none, then a session with a new
// lease and this replica's member key bound to it.
func (s *Store) connect(ctx context.Context) error {
	s.mu.Lock()
	cli := s.cli
	s.mu.Unlock()
	if cli == nil {
		var err error
		cli, err = clientv3.New(clientv3.Config{
			Endpoints:   s.cfg.Endpoints,
			TLS:         s.cfg.TLS,
			Username:    s.cfg.Username,
			Password:    s.cfg.Password,
			DialTimeout: s.cfg.DialTimeout,
			Context:     s.ctx,
			Logger:      zap.NewNop(),
			// Fail fast on a dead member rather than wait on it.
			DialKeepAliveTime:    5 * time.Second,
			DialKeepAliveTimeout: 2 * time.Second,
		})
		if err != nil {
			return fmt.Errorf("connect to etcd %s: %w", strings.Join(s.cfg.Endpoints, ","), err)
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			_ = cli.Close()
			return errors.New("store closed")
		}
		s.cli = cli
		s.mu.Unlock()
	}
	gctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	ttl := int64(s.cfg.LeaseTTL / time.Second)
	grant, err := cli.Grant(gctx, ttl)
	if err != nil {
		return fmt.Errorf("grant etcd lease: %w", err)
	}
	id := s.cfg.Name + "-" + strconv.FormatInt(int64(grant.ID), 16)
	member := s.cfg.Prefix + membersDir + id
	if _, err := cli.Put(gctx, member, s.cfg.Name, clientv3.WithLease(grant.ID)); err != nil {
		s.revoke(cli, grant.ID)
		return fmt.Errorf("register replica %s in etcd: %w", id, err)
	}
	sess, err := concurrency.NewSession(cli, concurrency.WithLease(grant.ID), concurrency.WithTTL(int(ttl)), concurrency.WithContext(s.ctx))
	if err != nil {
		s.revoke(cli, grant.ID)
		return fmt.Errorf("keep etcd lease alive: %w", err)
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		sess.Orphan()
		s.revoke(cli, grant.ID)
		return errors.New("store closed")
	}
	s.sess, s.id, s.lastErr = sess, id, nil
	s.mu.Unlock()
	s.logger.Info("etcd coordination session started", "owner", id, "lease_ttl", s.cfg.LeaseTTL)
	return nil
}

func (s *Store) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

func (s *Store) revoke(cli *clientv3.Client, lease clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.RequestTimeout)
	defer cancel()
	_, _ = cli.Revoke(ctx, lease)
}

// loop keeps a session: it waits for the current one to end and makes a new
// one (with a new owner ID) until Close.
func (s *Store) loop() {
	defer close(s.done)
	backoff := 200 * time.Millisecond
	for {
		s.mu.Lock()
		sess := s.sess
		s.mu.Unlock()
		if sess != nil {
			select {
			case <-sess.Done():
				s.mu.Lock()
				if s.sess == sess {
					s.sess = nil
				}
				s.mu.Unlock()
				if s.ctx.Err() != nil {
					return
				}
				s.logger.Warn("etcd coordination session lease lost; claims of this replica are released", "owner", s.ownerOf(sess))
			case <-s.ctx.Done():
				return
			}
			backoff = 200 * time.Millisecond
			continue
		}
		if err := s.connect(s.ctx); err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.logger.Debug("etcd coordination connect failed", "err", err)
			s.setErr(err)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			backoff = min(2*backoff, s.cfg.LeaseTTL/2)
		}
	}
}

func (s *Store) ownerOf(sess *concurrency.Session) string {
	return s.cfg.Name + "-" + strconv.FormatInt(int64(sess.Lease()), 16)
}

// Close revokes the session lease, which releases this replica's claims at
// once, and closes the connection. Later calls do nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	sess, cli := s.sess, s.cli
	s.sess, s.cli, s.closing = nil, nil, true
	s.mu.Unlock()
	var err error
	if sess != nil {
		// Revoke with its own bound: s.ctx ends below.
		sess.Orphan()
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		if _, rerr := cli.Revoke(ctx, sess.Lease()); rerr != nil {
			err = fmt.Errorf("revoke etcd lease: %w", rerr)
		}
		cancel()
	}
	s.cancel()
	<-s.done
	if cli != nil {
		if cerr := cli.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) && err == nil {
			err = fmt.Errorf("close etcd client: %w", cerr)
		}
	}
	return err
}

// ID is the owner ID of the current session ("" without one). It changes
// when a lapsed lease is replaced: claims made under an older ID are no
// longer this replica's.
func (s *Store) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		return ""
	}
	return s.id
}

// session returns the live session and its owner ID, or ErrNoSession.
func (s *Store) session() (*clientv3.Client, *concurrency.Session, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		if s.lastErr != nil {
			return nil, nil, "", fmt.Errorf("%w (last attempt: %v)", ErrNoSession, s.lastErr)
		}
		return nil, nil, "", ErrNoSession
	}
	select {
	case <-s.sess.Done():
		return nil, nil, "", ErrNoSession
	default:
	}
	return s.cli, s.sess, s.id, nil
}

// client returns the client for reads, which need no session.
func (s *Store) client() (*clientv3.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cli == nil {
		if s.lastErr != nil {
			return nil, fmt.Errorf("%w (last attempt: %v)", ErrNoSession, s.lastErr)
		}
		return nil, ErrNoSession
	}
	return s.cli, nil
}

// opCtx bounds one operation by RequestTimeout.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// fence is the comparison every write carries: this session's member key
// still exists under this session's lease.
func (s *Store) fence(sess *concurrency.Session, id string) clientv3.Cmp {
	return clientv3.Compare(clientv3.LeaseValue(s.cfg.Prefix+membersDir+id), "=", sess.Lease())
}

// LeaseAlive reports whether this replica may still act: its lease is
// known to etcd (asked now, so it needs quorum) and will live at least
// margin longer. Check it just before each external call; a replica whose
// lease could lapse during the margin must not act, since another replica
// may claim the object once it lapses.
func (s *Store) LeaseAlive(ctx context.Context, margin time.Duration) bool {
	cli, sess, _, err := s.session()
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HealthTimeout)
	defer cancel()
	asked := time.Now()
	resp, err := cli.TimeToLive(ctx, sess.Lease())
	if err != nil || resp.TTL <= 0 {
		return false
	}
	// The server measured TTL (rounded down to seconds) after we asked, so
	// the lease lives at least until asked+TTL.
	return time.Until(asked.Add(time.Duration(resp.TTL)*time.Second)) > margin
}

// Health returns nil when etcd answers a quorum read within HealthTimeout
// and this replica has a live session; otherwise why not.
func (s *Store) Health(ctx context.Context) error {
	cli, err := s.client()
	if err != nil {
		return fmt.Errorf("etcd health: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HealthTimeout)
	defer cancel()
	// A linearizable read goes through the raft leader: it fails without
	// quorum, where a member's local answer would not.
	if _, err := cli.Get(ctx, s.cfg.Prefix+membersDir, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd health: quorum read: %w", err)
	}
	if _, _, _, err := s.session(); err != nil {
		return fmt.Errorf("etcd health: %w", err)
	}
	return nil
}

// Up reports whether Health is nil: the value of the
// veeam_trigger_coordination_up gauge.
func (s *Store) Up(ctx context.Context) bool { return s.Health(ctx) == nil }
