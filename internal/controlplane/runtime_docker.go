package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// DefaultDockerImage is the docker runtime's image template when none is given ({version} is
// replaced): the stand-in images `make images` builds.
const DefaultDockerImage = "september-engine:{version}"

// DefaultDockerNetwork is the network engine containers join when none is given; it is created
// when it is missing.
const DefaultDockerNetwork = "engine_net"

// Labels the docker runtime puts on the containers (and the network) it creates.
const (
	LabelManagedBy    = "io.septemberai.engine.managed-by"
	LabelUserID       = "io.septemberai.engine.user-id"
	LabelVersion      = "io.septemberai.engine.version"
	LabelControlPlane = "io.septemberai.engine.controlplane"
	managedByValue    = "engine-controlplane"
)

// In the container, as the Engine's orchestrator lays it out.
const (
	containerPort     = "8000/tcp"
	containerBrainDir = "/data"
	containerCatalog  = "/etc/engine/catalog.json"
)

// DockerOptions configures the docker runtime (Options.Docker; engine-controlplane's --image,
// --image-for, --network, --brain-root, --engine-env-passthrough and --adopt-label).
type DockerOptions struct {
	// Image is the image template, {version} replaced ("" = DefaultDockerImage); any registry
	// prefix works. Images overrides it per version.
	Image  string
	Images map[string]string
	// Network is the network containers join ("" = DefaultDockerNetwork), created if missing.
	Network string
	// BrainRoot holds one directory per engine, mounted at /data ("" = <data-dir>/brains).
	BrainRoot string
	// EnvPassthrough names variables of the control plane's environment passed to every
	// container it creates (LLM_API_KEY, ...). The control plane's own settings never are.
	EnvPassthrough []string
	// AdoptLabels (KEY=VALUE) select containers someone else created that the control plane
	// registers at start-up and upgrades in place.
	AdoptLabels []string
	// NamePrefix starts every container name ("" = "engine-"): engine-user-0001.
	NamePrefix string
	// RemoveOnClose removes, when the control plane closes, every container it created and the
	// network when it created it. Off, containers outlive the control plane and the next one
	// adopts them; tests and demos turn it on to leave nothing behind.
	RemoveOnClose bool
}

func (o DockerOptions) empty() bool {
	return o.Image == "" && len(o.Images) == 0 && o.Network == "" && o.BrainRoot == "" && len(o.EnvPassthrough) == 0 &&
		len(o.AdoptLabels) == 0 && o.NamePrefix == "" && !o.RemoveOnClose
}

var (
	envName       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	containerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
)

// check refuses options that cannot work, before anything is started.
func (o DockerOptions) check() error {
	if o.Image != "" && !strings.Contains(o.Image, "{version}") {
		return fmt.Errorf("controlplane: docker image template %q has no {version}; for example %q (Docker.Images sets one version's image)", o.Image, DefaultDockerImage)
	}
	for _, n := range o.EnvPassthrough {
		switch {
		case !envName.MatchString(n):
			return fmt.Errorf("controlplane: engine env passthrough %q is not a variable name (letters, digits and _, for example LLM_API_KEY)", n)
		case strings.HasPrefix(n, "ENGINE_CONTROLPLANE_"):
			return fmt.Errorf("controlplane: engine env passthrough %q: the control plane's own settings (ENGINE_CONTROLPLANE_*, among them its admin key) never reach a container", n)
		}
	}
	for _, l := range o.AdoptLabels {
		if k, _, ok := strings.Cut(l, "="); !ok || k == "" {
			return fmt.Errorf("controlplane: adopt label %q must be KEY=VALUE, for example com.docker.compose.service=engine", l)
		}
	}
	if o.NamePrefix != "" && !containerName.MatchString(o.NamePrefix) {
		return fmt.Errorf("controlplane: container name prefix %q must start with a letter or digit and hold only letters, digits, _, . and -", o.NamePrefix)
	}
	if o.Network != "" && !containerName.MatchString(o.Network) {
		return fmt.Errorf("controlplane: network name %q must start with a letter or digit and hold only letters, digits, _, . and -", o.Network)
	}
	return nil
}

// dockerRuntime runs every engine as a container from its version's image through the Docker
// Engine API: the brain on the host under BrainRoot, one directory per engine mounted at /data
// (SQLITE_DB_PATH=/data/brain.sqlite), port 8000 published on 127.0.0.1, restart policy
// unless-stopped once healthy. Containers outlive the control plane; the next one adopts them
// by label without restarting them.
//
// Its files: runtime_docker.go (configuration, start-up, adoption, close),
// runtime_docker_container.go (creating, starting, stopping and watching one container) and
// runtime_docker_steps.go (an operation's steps).
type dockerRuntime struct {
	s *Server
	hostBrain
	cli         *client.Client
	o           DockerOptions
	instance    string // LabelControlPlane's value: this data dir's containers
	catalogFile string
	keyDir      string
	http        *http.Client

	mu      sync.Mutex
	ctrs    map[string]*engineContainer // the engine's container, by user id
	prev    map[string]*engineContainer // its previous container, kept stopped during an upgrade
	adopted map[string]string           // user id → host brain of an engine someone else created
	netMade bool                        // this control plane created the network
}

var _ engineRuntime = (*dockerRuntime)(nil)

func newDockerRuntime(s *Server) (*dockerRuntime, error) {
	o := s.opts.Docker
	if o.Image == "" {
		o.Image = DefaultDockerImage
	}
	if o.Network == "" {
		o.Network = DefaultDockerNetwork
	}
	if o.NamePrefix == "" {
		o.NamePrefix = "engine-"
	}
	if o.BrainRoot == "" {
		o.BrainRoot = filepath.Join(s.opts.DataDir, "brains")
	}
	var err error
	if o.BrainRoot, err = filepath.Abs(o.BrainRoot); err != nil {
		return nil, err
	}
	for v := range o.Images {
		if _, ok := s.cat.Get(v); !ok {
			return nil, fmt.Errorf("Docker.Images names version %q, which is not in the catalog (known: %v)", v, s.cat.Names())
		}
	}
	abs, _ := filepath.Abs(s.opts.DataDir)
	r := &dockerRuntime{s: s, o: o, instance: DockerInstance(abs),
		keyDir: filepath.Join(s.opts.DataDir, "run"), http: &http.Client{Timeout: 2 * time.Minute},
		ctrs: map[string]*engineContainer{}, prev: map[string]*engineContainer{}, adopted: map[string]string{}}
	r.hostBrain = hostBrain{path: r.brainPath}
	if r.cli, err = client.New(client.FromEnv); err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		r.cli.Close()
		return nil, fmt.Errorf("no Docker daemon answers at %s (%w): start Docker, or point DOCKER_HOST at a running daemon; the docker runtime does not start without one", r.cli.DaemonHost(), err)
	}
	for _, d := range []string{o.BrainRoot, r.keyDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			r.cli.Close()
			return nil, err
		}
	}
	b, _ := json.MarshalIndent(api.VersionList{Versions: s.opts.Catalog}, "", "  ")
	r.catalogFile = filepath.Join(abs, "catalog.json")
	if err := os.WriteFile(r.catalogFile, b, 0o644); err != nil {
		r.cli.Close()
		return nil, err
	}
	if err := r.ensureNetwork(ctx); err != nil {
		r.cli.Close()
		return nil, err
	}
	return r, nil
}

func (r *dockerRuntime) name() string        { return RuntimeDocker }
func (r *dockerRuntime) realProcesses() bool { return true }

// image is version's image: its override, or the template.
func (r *dockerRuntime) image(version string) string {
	if im, ok := r.o.Images[version]; ok {
		return im
	}
	return strings.ReplaceAll(r.o.Image, "{version}", version)
}

// containerName is user's container name: the prefix and the user id, which is kept as it is
// when Docker accepts it as a name; otherwise (or when long) it is sanitised and a short hash
// of the id keeps names apart.
func (r *dockerRuntime) containerName(user string) string {
	return r.o.NamePrefix + containerSafeName(user)
}

func containerSafeName(user string) string {
	b := []byte(user)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			b[i] = '-'
		}
	}
	out := string(b)
	if out == user && len(out) <= 64 {
		return out
	}
	sum := sha256.Sum256([]byte(user))
	return out[:min(len(out), 48)] + "-" + hex.EncodeToString(sum[:4])
}

// brainPath is where user's brain lives on the host: under BrainRoot in a directory of its own,
// or where an adopted container's mount puts it.
func (r *dockerRuntime) brainPath(user string) string {
	r.mu.Lock()
	p, ok := r.adopted[user]
	r.mu.Unlock()
	if ok {
		return p
	}
	return filepath.Join(r.o.BrainRoot, containerSafeName(user), "brain.sqlite")
}

func (r *dockerRuntime) ownsBrain(user string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, adopted := r.adopted[user]
	return !adopted
}

// removedBrain removes the engine's brain directory, which the control plane created.
func (r *dockerRuntime) removedBrain(user string) {
	if r.ownsBrain(user) {
		_ = os.Remove(filepath.Dir(r.brainPath(user)))
		_ = os.Remove(filepath.Join(r.keyDir, containerSafeName(user)+".key"))
	}
}

// labels are the labels of a container the control plane creates for user at version.
func (r *dockerRuntime) labels(user, version string) map[string]string {
	return map[string]string{LabelManagedBy: managedByValue, LabelUserID: user, LabelVersion: version, LabelControlPlane: r.instance}
}

func (r *dockerRuntime) get(user string) *engineContainer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ctrs[user]
}

func (r *dockerRuntime) process(user string) (pid int, url, key string, ok bool) {
	c := r.get(user)
	if c == nil {
		return 0, "", "", false
	}
	return c.pid, c.url, c.key, true
}

// ensureNetwork creates the network when it is missing.
func (r *dockerRuntime) ensureNetwork(ctx context.Context) error {
	if _, err := r.cli.NetworkInspect(ctx, r.o.Network, client.NetworkInspectOptions{}); err == nil {
		return nil
	} else if !isNotFound(err) {
		return fmt.Errorf("inspect network %s: %w", r.o.Network, err)
	}
	_, err := r.cli.NetworkCreate(ctx, r.o.Network, client.NetworkCreateOptions{Driver: "bridge",
		Labels: map[string]string{LabelManagedBy: managedByValue, LabelControlPlane: r.instance}})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("create network %s: %w", r.o.Network, err)
	}
	r.netMade = err == nil
	return nil
}

// checkImage refuses a version whose image the daemon does not have, before anything is stopped.
func (r *dockerRuntime) checkImage(version string) *apiError {
	im := r.image(version)
	ctx, cancel := context.WithTimeout(r.s.ctx, 30*time.Second)
	defer cancel()
	if _, err := r.cli.ImageInspect(ctx, im); err != nil {
		if isNotFound(err) {
			ae := newErr(http.StatusConflict, api.CodeImageNotFound, fmt.Sprintf("image %s (version %s) is not on the Docker daemon and is not pulled: build it (make images) or `docker pull %s`, then retry; nothing was stopped or changed", im, version, im))
			ae.detail.Field = "version"
			return ae
		}
		return newErr(http.StatusBadGateway, api.CodeInternal, fmt.Sprintf("inspecting image %s failed: %v; nothing was stopped or changed", im, err))
	}
	return nil
}

// resume registers the containers someone else created (AdoptLabels), then brings up every
// engine the registry records as running: a container of ours still running is adopted as it
// is, without a restart; a stopped one is started; a missing one is created.
func (r *dockerRuntime) resume() {
	ctx := r.s.ctx
	ours, err := r.listContainers(ctx, LabelControlPlane+"="+r.instance)
	if err != nil {
		r.s.log.Error("listing this control plane's containers failed", "error", err)
	}
	for _, l := range r.o.AdoptLabels {
		r.adoptLabelled(ctx, l)
	}
	r.s.eachRunningEngine(func(user, version string) {
		if err := r.resumeOne(user, version, ours); err != nil {
			r.s.log.Error("engine did not come back", "user_id", user, "error", err)
		}
	})
	for _, c := range ours {
		if strings.HasSuffix(c.name, previousSuffix) && r.s.engineByID(c.labels[LabelUserID]) {
			r.mu.Lock()
			r.prev[c.labels[LabelUserID]] = &engineContainer{id: c.id, name: c.name, image: c.image,
				engineInstance: engineInstance{user: c.labels[LabelUserID], version: c.labels[LabelVersion]}}
			r.mu.Unlock()
		}
	}
}

// engineByID says an engine is registered for user.
func (s *Server) engineByID(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.engines[user] != nil
}

// resumeOne brings user's engine up at version after a start: adopted when its container runs.
func (r *dockerRuntime) resumeOne(user, version string, ours map[string]listedContainer) error {
	name := r.containerName(user)
	r.mu.Lock()
	_, foreign := r.adopted[user]
	r.mu.Unlock()
	var found *listedContainer
	if foreign {
		// An adopted container keeps the name someone gave it, which is its user id.
		if c, err := r.lookup(user); err == nil {
			found = c
		}
	} else if c, ok := ours[name]; ok {
		found = &c
	}
	if found != nil && found.version == version {
		c, err := r.attach(found)
		if err == nil {
			if found.running {
				err = c.waitHealth(r.s.ctx, time.Now().Add(r.realWait(time.Duration(defaultHealthTimeout)*time.Second)), true)
			} else {
				err = r.startExisting(c)
			}
		}
		if err == nil {
			r.healthy(c)
			return nil
		}
		return r.lost(user, version, err)
	}
	if found != nil && !foreign {
		r.removeByID(found.id)
	}
	return r.boot(user, version)
}

// boot creates and starts user's container at version outside any operation and waits until it
// is healthy. On failure the engine is failed with the reason.
func (r *dockerRuntime) boot(user, version string) error {
	env, _ := r.s.faultEnv(user, version, false)
	c, err := r.create(user, version, env)
	if err == nil {
		if err = r.start(c); err == nil {
			if err = c.waitHealth(r.s.ctx, time.Now().Add(r.realWait(time.Duration(defaultHealthTimeout)*time.Second)), true); err == nil {
				r.healthy(c)
				return nil
			}
		}
		r.discard(c)
	}
	return r.lost(user, version, err)
}

// lost fails user's engine: version did not come up.
func (r *dockerRuntime) lost(user, version string, err error) error {
	return r.s.bootFailed(user, version, " in a container", err)
}

// close leaves the containers running (the next control plane adopts them) unless
// RemoveOnClose says to remove everything this control plane created.
func (r *dockerRuntime) close() {
	defer r.cli.Close()
	if !r.o.RemoveOnClose {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := RemoveDockerResources(ctx, r.cli, r.instance); err != nil {
		r.s.log.Error("removing the containers failed", "error", err)
	}
}

// removeLocked removes user's containers (current and previous); the brain is the caller's.
func (r *dockerRuntime) removeLocked(e *engineState) {
	r.mu.Lock()
	cs := []*engineContainer{r.ctrs[e.UserID], r.prev[e.UserID]}
	delete(r.ctrs, e.UserID)
	delete(r.prev, e.UserID)
	r.mu.Unlock()
	for _, c := range cs {
		if c != nil {
			c.stopping.Store(true)
			r.removeByID(c.id)
		}
	}
}

func (r *dockerRuntime) turns(e *engineState, req api.TurnsRequest) (api.TurnsResult, *apiError) {
	var inst *engineInstance
	if c := r.get(e.UserID); c != nil && !c.stopping.Load() {
		inst = &c.engineInstance
	}
	return r.s.instanceTurns(e, inst, r.http, req)
}

func (r *dockerRuntime) metricsLocked(e *engineState, m *api.Metrics) {
	processMetrics(m, e.results, m.From)
}

// realWait is a requested timeout as a runtime of real programs applies it (Server.realWait).
func (r *dockerRuntime) realWait(d time.Duration) time.Duration {
	return r.s.realWait(d, minProcessWait)
}

// RemoveDockerResources removes every container (and the network, when one of them made it)
// labelled with a control plane's instance label, never a volume or a brain. It is what
// DockerOptions.RemoveOnClose runs, and what tests use to leave nothing behind.
func RemoveDockerResources(ctx context.Context, cli *client.Client, instance string) error {
	f := client.Filters{}.Add("label", LabelControlPlane+"="+instance)
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list.Items {
		if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	}
	nets, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, n := range nets.Items {
		// A removed container's endpoint can linger for a moment: retry briefly.
		for try := 0; ; try++ {
			_, err := cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
			if err == nil || isNotFound(err) {
				break
			}
			if try == 50 || ctx.Err() != nil {
				errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// DockerInstance is the LabelControlPlane value of the control plane over dataDir.
func DockerInstance(dataDir string) string {
	abs, _ := filepath.Abs(dataDir)
	sum := sha256.Sum256([]byte(abs))
	return hex.EncodeToString(sum[:6])
}
