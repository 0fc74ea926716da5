package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// previousSuffix ends the name of an engine's previous container, kept stopped during an upgrade.
const previousSuffix = "-previous"

// engineContainer is one engine container.
type engineContainer struct {
	engineInstance // done closes once the container has stopped (its exit seen by ContainerWait)
	id, name       string
	image          string
	pid            int
	// restart is the restart policy it gets once healthy (unless-stopped, or an adopted
	// container's own); until then it runs with none, so a failed boot is not restarted.
	restart container.RestartPolicy
	// watched is true from start until its starter has seen it healthy: until then the starter
	// reports an exit, with its own context.
	watched atomic.Bool
	exit    string // "exit code 3", set before done closes
	tail    *logTail
}

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// listedContainer is what resume needs of a container.
type listedContainer struct {
	id, name, image, version string
	labels                   map[string]string
	running                  bool
}

// listContainers lists the containers carrying label (KEY=VALUE), by name.
func (r *dockerRuntime) listContainers(ctx context.Context, label string) (map[string]listedContainer, error) {
	res, err := r.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", label)})
	if err != nil {
		return nil, err
	}
	out := map[string]listedContainer{}
	for _, c := range res.Items {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out[name] = listedContainer{id: c.ID, name: name, image: c.Image, labels: c.Labels, running: c.State == container.StateRunning,
			version: versionOf(c.Labels, c.Image)}
	}
	return out, nil
}

// versionOf is a container's Engine version: its version label, else its image's tag.
func versionOf(labels map[string]string, image string) string {
	if v := labels[LabelVersion]; v != "" {
		return v
	}
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		return image[i+1:]
	}
	return ""
}

// lookup finds the container named name (an adopted one).
func (r *dockerRuntime) lookup(name string) (*listedContainer, error) {
	in, err := r.cli.ContainerInspect(r.s.ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return nil, err
	}
	c := in.Container
	return &listedContainer{id: c.ID, name: strings.TrimPrefix(c.Name, "/"), image: c.Config.Image, labels: c.Config.Labels,
		running: c.State != nil && c.State.Running, version: versionOf(c.Config.Labels, c.Config.Image)}, nil
}

// adoptLabelled registers the containers carrying label that someone else created (a compose
// service, a `docker run`): user id from LabelUserID or the container's name, version from
// LabelVersion or the image tag, brain from the mount holding SQLITE_DB_PATH. Their containers
// keep their names (resumeOne finds them by name).
func (r *dockerRuntime) adoptLabelled(ctx context.Context, label string) {
	list, err := r.listContainers(ctx, label)
	if err != nil {
		r.s.log.Error("listing containers to adopt failed", "label", label, "error", err)
		return
	}
	for name, c := range list {
		if c.labels[LabelControlPlane] != "" {
			continue
		}
		if err := r.adoptOne(ctx, name, c); err != nil {
			r.s.log.Error("container not adopted", "container", name, "label", label, "error", err)
		}
	}
}

func (r *dockerRuntime) adoptOne(ctx context.Context, name string, c listedContainer) error {
	user := c.labels[LabelUserID]
	if user == "" {
		user = name
	}
	if !validID(user) {
		return fmt.Errorf("user id %q (label %s or the container's name) must match %s", user, LabelUserID, api.IDPattern)
	}
	v, ok := r.s.cat.Get(c.version)
	if !ok {
		return fmt.Errorf("version %q (label %s or the tag of image %s) is not in the catalog (known: %v)", c.version, LabelVersion, c.image, r.s.cat.Names())
	}
	in, err := r.cli.ContainerInspect(ctx, c.id, client.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	brain, err := hostBrainOf(in.Container)
	if err != nil {
		return err
	}
	if r.containerName(user) != name {
		// Its own name is kept: the prefix does not apply to a container someone else named.
		if user != name {
			return fmt.Errorf("container %s carries %s=%s: an adopted container is found by its name, so the label must be the name", name, LabelUserID, user)
		}
	}
	r.mu.Lock()
	r.adopted[user] = brain
	r.mu.Unlock()
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.engines[user] != nil {
		return nil
	}
	schema, dirty, err := brainSchema(brain)
	if err != nil {
		return fmt.Errorf("brain %s: %w", brain, err)
	}
	now := time.Now().UTC()
	e := &engineState{Engine: api.Engine{UserID: user, EngineID: "eng-" + randomHex(8), EngineVersion: v.Version, SchemaVersion: schema,
		Status: api.StatusRunning, LastHealthAt: &now, Health: healthOK(), Generation: 1}}
	if !c.running || dirty {
		e.fail(api.CodeHealthCheckFailed, fmt.Sprintf("adopted container %s is not running (or its brain is dirty): start it, or restore a snapshot", name))
	}
	if err := s.reg.putEngines(e.Engine); err != nil {
		return err
	}
	s.addEngineLocked(e)
	s.log.Info("adopted a container", "container", name, "user_id", user, "version", v.Version, "brain", brain)
	return nil
}

// hostBrainOf finds an adopted container's brain on the host: the mount holding SQLITE_DB_PATH
// (default /data/brain.sqlite).
func hostBrainOf(c container.InspectResponse) (string, error) {
	db := containerBrainDir + "/brain.sqlite"
	for _, kv := range c.Config.Env {
		if v, ok := strings.CutPrefix(kv, "SQLITE_DB_PATH="); ok {
			db = v
		}
	}
	for _, m := range c.Mounts {
		rel, err := filepath.Rel(m.Destination, db)
		if err == nil && !strings.HasPrefix(rel, "..") && m.Source != "" {
			return filepath.Join(m.Source, rel), nil
		}
	}
	return "", fmt.Errorf("its brain %s is not on a mount (a bind mount or volume): the control plane snapshots brains on the host, so mount the brain's directory", db)
}

// attach takes over a container found at start-up, running or stopped, without restarting it.
func (r *dockerRuntime) attach(l *listedContainer) (*engineContainer, error) {
	in, err := r.cli.ContainerInspect(r.s.ctx, l.id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, err
	}
	user := l.labels[LabelUserID]
	if user == "" {
		user = l.name
	}
	c := &engineContainer{id: l.id, name: l.name, image: l.image, restart: in.Container.HostConfig.RestartPolicy}
	c.engineInstance = engineInstance{user: user, version: l.version, key: r.keyOf(user, in.Container.Config.Env), desc: "container " + l.name}
	r.mu.Lock()
	r.ctrs[user] = c
	r.mu.Unlock()
	if l.running {
		c.watched.Store(true)
		if err := r.follow(c, in.Container); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// keyOf is the engine key of user's container: the one this control plane made (kept under the
// data dir), else an adopted container's ENGINE_API_KEY.
func (r *dockerRuntime) keyOf(user string, env []string) string {
	if b, err := os.ReadFile(filepath.Join(r.keyDir, containerSafeName(user)+".key")); err == nil {
		return strings.TrimSpace(string(b))
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "ENGINE_API_KEY="); ok {
			return v
		}
	}
	return ""
}

// create creates user's container at version (not started): a clone of an adopted container
// with only its image changed, or the control plane's own.
func (r *dockerRuntime) create(user, version string, extraEnv []string) (*engineContainer, error) {
	ctx := r.s.ctx
	im := r.image(version)
	if _, err := r.cli.ImageInspect(ctx, im); err != nil {
		if isNotFound(err) {
			return nil, &imageMissing{image: im, version: version}
		}
		return nil, err
	}
	r.mu.Lock()
	_, foreign := r.adopted[user]
	prev := r.prev[user]
	r.mu.Unlock()
	var opts client.ContainerCreateOptions
	var extraNets map[string]*network.EndpointSettings
	key := ""
	if foreign {
		if prev == nil {
			return nil, fmt.Errorf("user %s's adopted container is gone: re-create it as it was (docker run / compose up), then restart the control plane", user)
		}
		var err error
		if opts, extraNets, err = r.cloneOptions(ctx, prev, im, version, extraEnv); err != nil {
			return nil, err
		}
		key = prev.key
	} else {
		key = randomHex(24)
		if err := os.WriteFile(filepath.Join(r.keyDir, containerSafeName(user)+".key"), []byte(key), 0o600); err != nil {
			return nil, err
		}
		opts = r.ownOptions(user, version, im, key, extraEnv)
	}
	restart := opts.HostConfig.RestartPolicy
	opts.HostConfig.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyDisabled}
	res, err := r.cli.ContainerCreate(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("create container %s from %s: %w", opts.Name, im, err)
	}
	for n, ep := range extraNets {
		if _, err := r.cli.NetworkConnect(ctx, n, client.NetworkConnectOptions{Container: res.ID, EndpointConfig: ep}); err != nil {
			r.removeByID(res.ID)
			return nil, fmt.Errorf("connect container %s to network %s: %w", opts.Name, n, err)
		}
	}
	c := &engineContainer{id: res.ID, name: opts.Name, image: im, restart: restart}
	c.engineInstance = engineInstance{user: user, version: version, key: key, desc: "container " + opts.Name}
	return c, nil
}

// ownOptions is a container of the control plane's own: labelled, port 8000 published on
// 127.0.0.1 from the port range (or a free port), the brain directory at /data, the network,
// restart unless-stopped, the passed-through environment and nothing else of the control
// plane's.
func (r *dockerRuntime) ownOptions(user, version, im, key string, extraEnv []string) client.ContainerCreateOptions {
	sum := sha256.Sum256([]byte(key))
	env := []string{"SQLITE_DB_PATH=" + containerBrainDir + "/brain.sqlite", "PORT=8000", "ENGINE_KEY_HASH=" + hex.EncodeToString(sum[:]),
		"ENGINE_STANDIN_CATALOG=" + containerCatalog, "ENGINE_STANDIN_TIME_SCALE=" + strconv.FormatFloat(r.s.opts.TimeScale, 'g', -1, 64)}
	for _, n := range r.o.EnvPassthrough {
		if v, ok := os.LookupEnv(n); ok {
			env = append(env, n+"="+v)
		}
	}
	env = append(env, extraEnv...)
	hostPort := ""
	if r.s.opts.PortMin != 0 {
		hostPort = fmt.Sprintf("%d-%d", r.s.opts.PortMin, r.s.opts.PortMax)
	}
	port := network.MustParsePort(containerPort)
	brainDir := filepath.Dir(r.brainPath(user))
	return client.ContainerCreateOptions{
		Name: r.containerName(user),
		Config: &container.Config{Image: im, Env: env, Labels: r.labels(user, version),
			ExposedPorts: network.PortSet{port: struct{}{}}},
		HostConfig: &container.HostConfig{
			Binds:         []string{brainDir + ":" + containerBrainDir, r.catalogFile + ":" + containerCatalog + ":ro"},
			PortBindings:  network.PortMap{port: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: hostPort}}},
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
			NetworkMode:   container.NetworkMode(r.o.Network),
		},
	}
}

// cloneOptions re-creates an adopted container as `docker compose up -d` with a new tag would:
// its name, labels, environment, mounts, networks and restart policy kept, only the image (and
// what the old image itself set) changed.
func (r *dockerRuntime) cloneOptions(ctx context.Context, prev *engineContainer, im, version string, extraEnv []string) (client.ContainerCreateOptions, map[string]*network.EndpointSettings, error) {
	in, err := r.cli.ContainerInspect(ctx, prev.id, client.ContainerInspectOptions{})
	if err != nil {
		return client.ContainerCreateOptions{}, nil, err
	}
	old := in.Container
	img, err := r.cli.ImageInspect(ctx, old.Image)
	var imgEnv []string
	var imgLabels map[string]string
	var imgCmd, imgEntry []string
	if err == nil && img.Config != nil {
		imgEnv, imgLabels, imgCmd, imgEntry = img.Config.Env, img.Config.Labels, img.Config.Cmd, img.Config.Entrypoint
	}
	cfg := *old.Config
	cfg.Image = im
	cfg.Env = nil
	for _, kv := range old.Config.Env {
		if !slices.Contains(imgEnv, kv) {
			cfg.Env = append(cfg.Env, kv)
		}
	}
	cfg.Env = append(cfg.Env, extraEnv...)
	cfg.Labels = map[string]string{}
	for k, v := range old.Config.Labels {
		if iv, ok := imgLabels[k]; !ok || iv != v {
			cfg.Labels[k] = v
		}
	}
	if _, ok := cfg.Labels[LabelVersion]; ok {
		cfg.Labels[LabelVersion] = version
	}
	if slices.Equal(cfg.Cmd, imgCmd) {
		cfg.Cmd = nil
	}
	if slices.Equal(cfg.Entrypoint, imgEntry) {
		cfg.Entrypoint = nil
	}
	if strings.HasPrefix(old.ID, cfg.Hostname) {
		cfg.Hostname = ""
	}
	hc := *old.HostConfig
	name := strings.TrimSuffix(prev.name, previousSuffix)
	nets := map[string]*network.EndpointSettings{}
	var first map[string]*network.EndpointSettings
	if old.NetworkSettings != nil {
		for n, ep := range old.NetworkSettings.Networks {
			var aliases []string
			for _, a := range ep.Aliases {
				if !strings.HasPrefix(old.ID, a) && a != strings.TrimPrefix(old.Name, "/") {
					aliases = append(aliases, a)
				}
			}
			settings := &network.EndpointSettings{Aliases: aliases, Links: ep.Links, DriverOpts: ep.DriverOpts}
			if n == string(hc.NetworkMode) || (first == nil && len(old.NetworkSettings.Networks) == 1) {
				first = map[string]*network.EndpointSettings{n: settings}
				continue
			}
			nets[n] = settings
		}
	}
	opts := client.ContainerCreateOptions{Name: name, Config: &cfg, HostConfig: &hc}
	if first != nil {
		opts.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: first}
	}
	return opts, nets, nil
}

// start starts c and follows it: its URL, its pid, and its exit.
func (r *dockerRuntime) start(c *engineContainer) error {
	c.watched.Store(true)
	r.mu.Lock()
	r.ctrs[c.user] = c
	r.mu.Unlock()
	if _, err := r.cli.ContainerStart(r.s.ctx, c.id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", c.name, err)
	}
	in, err := r.cli.ContainerInspect(r.s.ctx, c.id, client.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	r.s.log.Info("engine container started", "user_id", c.user, "version", c.version, "container", c.name, "image", c.image)
	return r.follow(c, in.Container)
}

// startExisting starts a stopped container of the engine's as it is.
func (r *dockerRuntime) startExisting(c *engineContainer) error {
	if err := r.start(c); err != nil {
		return err
	}
	return c.waitHealth(r.s.ctx, time.Now().Add(r.realWait(time.Duration(defaultHealthTimeout)*time.Second)), true)
}

// follow reads c's address from in and waits for its exit in the background.
func (r *dockerRuntime) follow(c *engineContainer, in container.InspectResponse) error {
	c.done = make(chan struct{})
	c.tail = &logTail{w: io.Discard}
	c.exited = func() error { return &containerExit{c: c} }
	if in.State != nil {
		c.pid = in.State.Pid
	}
	c.url = ""
	if in.NetworkSettings != nil {
		if bs := in.NetworkSettings.Ports[network.MustParsePort(containerPort)]; len(bs) > 0 && bs[0].HostPort != "" {
			host := "127.0.0.1"
			if bs[0].HostIP.IsValid() && !bs[0].HostIP.IsUnspecified() {
				host = bs[0].HostIP.String()
			}
			c.url = "http://" + net.JoinHostPort(host, bs[0].HostPort)
		}
		if c.url == "" {
			for _, ep := range in.NetworkSettings.Networks {
				if ep.IPAddress.IsValid() {
					c.url = "http://" + net.JoinHostPort(ep.IPAddress.String(), "8000")
					break
				}
			}
		}
	}
	if c.url == "" {
		return fmt.Errorf("container %s publishes no port 8000 and has no network address", c.name)
	}
	wait := r.cli.ContainerWait(r.s.ctx, c.id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	go func() {
		var code int64 = -1
		select {
		case res := <-wait.Result:
			code = res.StatusCode
		case err := <-wait.Error:
			if r.s.ctx.Err() != nil {
				return // the control plane closes; the container keeps running
			}
			c.exit = "lost track of it: " + err.Error()
		}
		if code >= 0 {
			c.exit = fmt.Sprintf("exit code %d", code)
			if code == 137 {
				c.exit += " (SIGKILL)"
			}
		}
		r.readLogs(c)
		close(c.done)
		if !c.stopping.Load() && !c.watched.Load() {
			r.exitedUnasked(c)
		}
	}()
	return nil
}

// readLogs keeps the last error line of c's output, which explains an exit.
func (r *dockerRuntime) readLogs(c *engineContainer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc, err := r.cli.ContainerLogs(ctx, c.id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "50"})
	if err != nil {
		return
	}
	defer rc.Close()
	_, _ = stdcopy.StdCopy(c.tail, c.tail, rc)
}

// containerExit describes why a container stopped, with the code and message of its last error
// log line when it wrote one.
type containerExit struct{ c *engineContainer }

func (e *containerExit) Error() string {
	s := fmt.Sprintf("engine container %s (%s) stopped: %s", e.c.name, e.c.image, e.c.exit)
	if _, msg := e.c.tail.lastError(); msg != "" {
		s += "; its last error: " + msg
	}
	return s
}

func (e *containerExit) apiCode(def string) string {
	switch code, _ := e.c.tail.lastError(); code {
	case api.CodeMigrationRequired, api.CodeMigrationFailed:
		return code
	}
	return def
}

// imageMissing is a version whose image the daemon does not have.
type imageMissing struct{ image, version string }

func (e *imageMissing) Error() string {
	return fmt.Sprintf("image %s (version %s) is not on the Docker daemon: build it (make images) or docker pull it", e.image, e.version)
}

// healthy hands c over to crash and hang detection once its starter has seen it healthy, and
// gives it its restart policy.
func (r *dockerRuntime) healthy(c *engineContainer) {
	if c.restart.Name != "" && c.restart.Name != container.RestartPolicyDisabled {
		rp := c.restart
		if _, err := r.cli.ContainerUpdate(r.s.ctx, c.id, client.ContainerUpdateOptions{RestartPolicy: &rp}); err != nil {
			r.s.log.Warn("could not set the restart policy", "container", c.name, "error", err)
		}
	}
	c.watched.Store(false)
	select {
	case <-c.done:
		if !c.stopping.Load() {
			r.exitedUnasked(c)
		}
		return
	default:
	}
	go r.s.probeHealth(&c.engineInstance, func() bool { return r.get(c.user) == c }, func(failures int, why string) string {
		return fmt.Sprintf("user %s's engine container %s (version %s) stopped answering /health (%d probes in a row failed, last: %s); it was stopped and the engine is failed: restore a snapshot to bring it back",
			c.user, c.name, c.version, failures, why)
	}, func() { r.kill(c) })
}

// exitedUnasked fails the engine of a container that had been healthy and stopped unasked
// (crashed, killed, or restarting): it is stopped for good, so it does not restart in a loop.
func (r *dockerRuntime) exitedUnasked(c *engineContainer) {
	s := r.s
	s.mu.Lock()
	e := s.engines[c.user]
	current := r.get(c.user) == c
	if e != nil && current && e.Status != api.StatusFailed {
		if err := s.engineLostLocked(e, api.CodeHealthCheckFailed, fmt.Sprintf("user %s's engine container %s (version %s) stopped unexpectedly (%s); it is stopped and the engine is failed: restore a snapshot to bring it back",
			c.user, c.name, c.version, c.exit)); err != nil {
			s.log.Error("registry write failed", "user_id", c.user, "error", err)
		}
	}
	s.mu.Unlock()
	s.log.Error("engine container stopped unexpectedly", "user_id", c.user, "container", c.name, "exit", c.exit)
	c.stopping.Store(true)
	r.stopNow(c)
}

// stop is docker stop with grace: SIGTERM, the grace, SIGKILL. killed says the grace ran out.
func (r *dockerRuntime) stop(c *engineContainer, grace time.Duration) (took time.Duration, killed bool, err error) {
	c.stopping.Store(true)
	secs := int((grace + time.Second - 1) / time.Second)
	start := time.Now()
	if _, err := r.cli.ContainerStop(r.s.ctx, c.id, client.ContainerStopOptions{Timeout: &secs}); err != nil {
		return time.Since(start), false, err
	}
	if c.done != nil {
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
		}
	}
	took = time.Since(start)
	in, err := r.cli.ContainerInspect(r.s.ctx, c.id, client.ContainerInspectOptions{})
	if err != nil {
		return took, false, err
	}
	return took, in.Container.State.ExitCode == 137 && !in.Container.State.OOMKilled, nil
}

// kill is docker kill (SIGKILL), then docker stop so no restart policy brings it back.
func (r *dockerRuntime) kill(c *engineContainer) {
	c.stopping.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = r.cli.ContainerKill(ctx, c.id, client.ContainerKillOptions{Signal: "SIGKILL"})
	r.stopNow(c)
}

// stopNow stops c at once and waits until it has stopped.
func (r *dockerRuntime) stopNow(c *engineContainer) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zero := 0
	_, _ = r.cli.ContainerStop(ctx, c.id, client.ContainerStopOptions{Timeout: &zero})
	if c.done != nil {
		select {
		case <-c.done:
		case <-ctx.Done():
		}
	}
}

// discard stops and removes a container an operation created and no longer needs, and forgets it.
func (r *dockerRuntime) discard(c *engineContainer) {
	c.stopping.Store(true)
	r.mu.Lock()
	if r.ctrs[c.user] == c {
		delete(r.ctrs, c.user)
	}
	r.mu.Unlock()
	r.removeByID(c.id)
}

// removeByID force-removes a container; its volumes and bind mounts are never touched.
func (r *dockerRuntime) removeByID(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && !isNotFound(err) {
		r.s.log.Error("removing a container failed", "container", id, "error", err)
	}
}

// keepPrevious keeps c, stopped, as user's previous container (renamed, so its name is free for
// the new one) until the new one is healthy; a container that failed after an upgrade already
// kept one is removed instead.
func (r *dockerRuntime) keepPrevious(c *engineContainer) (kept bool) {
	r.mu.Lock()
	old := r.prev[c.user]
	if r.ctrs[c.user] == c {
		delete(r.ctrs, c.user)
	}
	r.mu.Unlock()
	if old != nil {
		r.removeByID(c.id)
		return false
	}
	newName := c.name + previousSuffix
	if _, err := r.cli.ContainerRename(r.s.ctx, c.id, client.ContainerRenameOptions{NewName: newName}); err != nil {
		r.s.log.Error("renaming the previous container failed; it is removed instead", "container", c.name, "error", err)
		r.removeByID(c.id)
		return false
	}
	c.name = newName
	r.mu.Lock()
	r.prev[c.user] = c
	r.mu.Unlock()
	return true
}

// takePrevious returns user's previous container, renamed back, when it runs version (an image
// rollback restarts it rather than re-creating it).
func (r *dockerRuntime) takePrevious(user, version string) *engineContainer {
	r.mu.Lock()
	p := r.prev[user]
	if p == nil || p.version != version {
		r.mu.Unlock()
		return nil
	}
	delete(r.prev, user)
	r.mu.Unlock()
	name := strings.TrimSuffix(p.name, previousSuffix)
	if _, err := r.cli.ContainerRename(r.s.ctx, p.id, client.ContainerRenameOptions{NewName: name}); err != nil {
		r.s.log.Error("renaming the previous container back failed", "container", p.name, "error", err)
		r.mu.Lock()
		r.prev[user] = p
		r.mu.Unlock()
		return nil
	}
	p.name, p.desc = name, "container "+name
	p.stopping.Store(false)
	in, err := r.cli.ContainerInspect(r.s.ctx, p.id, client.ContainerInspectOptions{})
	if err == nil {
		p.restart = in.Container.HostConfig.RestartPolicy
	}
	return p
}

// dropPrevious removes user's previous container once its successor is healthy.
func (r *dockerRuntime) dropPrevious(user string) string {
	r.mu.Lock()
	p := r.prev[user]
	delete(r.prev, user)
	r.mu.Unlock()
	if p == nil {
		return ""
	}
	r.removeByID(p.id)
	return p.name
}

// errIsImageMissing says err is a missing image.
func errIsImageMissing(err error) bool {
	var im *imageMissing
	return errors.As(err, &im)
}
