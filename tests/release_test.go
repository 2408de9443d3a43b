package tests

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/veeam-failover/veeam_failover_exporter/internal/proctest"
)

// The release artifacts checked here, relative to the repository root.
var (
	dockerfile      = filepath.Join(repoRoot, "Dockerfile")
	dockerignore    = filepath.Join(repoRoot, ".dockerignore")
	kubernetesDir   = filepath.Join(repoRoot, "examples", "kubernetes")
	prometheusRules = filepath.Join(kubernetesDir, "prometheusrule.yaml")
)

// buildOutput is where the Dockerfile's build stage puts what the final stage
// copies; the test maps it into a temporary directory.
const buildOutput = "/out/"

// instruction is one Dockerfile instruction: its keyword, its --flags and
// its arguments (the JSON form already split).
type instruction struct {
	line  int
	cmd   string
	flags map[string]string
	args  []string
	raw   string // the arguments as written, for RUN
}

// stage is one FROM … of a multi-stage Dockerfile.
type stage struct {
	name  string
	from  instruction
	instr []instruction
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instr {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// last returns the stage's last instruction cmd (later ones override earlier).
func (s stage) last(cmd string) (instruction, bool) {
	all := s.all(cmd)
	if len(all) == 0 {
		return instruction{}, false
	}
	return all[len(all)-1], true
}

// parseDockerfile reads the subset of the Dockerfile syntax the project uses:
// comments, line continuations, --flags, and the JSON or shell argument forms.
func parseDockerfile(t *testing.T, file string) []stage {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var (
		stages  []stage
		pending strings.Builder
		start   int
	)
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		trimmed := strings.TrimSpace(l)
		if pending.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if pending.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if pending.Len() == 0 {
			start = i + 1
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			pending.WriteString(cont + " ")
			continue
		}
		pending.WriteString(trimmed)
		in := parseInstruction(t, start, pending.String())
		pending.Reset()
		if in.cmd == "FROM" {
			st := stage{from: in}
			if len(in.args) == 3 && strings.EqualFold(in.args[1], "AS") {
				st.name = in.args[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s:%d: %s before the first FROM", file, in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, in)
	}
	if pending.Len() > 0 {
		t.Fatalf("%s: ends inside a continued instruction", file)
	}
	return stages
}

func parseInstruction(t *testing.T, line int, text string) instruction {
	t.Helper()
	cmd, rest, _ := strings.Cut(text, " ")
	in := instruction{line: line, cmd: strings.ToUpper(cmd), flags: map[string]string{}}
	rest = strings.TrimSpace(rest)
	for strings.HasPrefix(rest, "--") {
		var flag string
		flag, rest, _ = strings.Cut(rest, " ")
		k, v, _ := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
		in.flags[k] = v
		rest = strings.TrimSpace(rest)
	}
	in.raw = rest
	if strings.HasPrefix(rest, "[") {
		if err := yaml.Unmarshal([]byte(rest), &in.args); err != nil {
			t.Fatalf("Dockerfile:%d: %s: bad JSON form: %v", line, in.cmd, err)
		}
		return in
	}
	in.args = strings.Fields(rest)
	return in
}

// ignoreRules are the patterns of .dockerignore.
type ignoreRules []string

func readDockerignore(t *testing.T) ignoreRules {
	t.Helper()
	b, err := os.ReadFile(dockerignore)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var rules ignoreRules
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "!") || strings.Contains(l, "**") {
			t.Fatalf(".dockerignore: %q: this test understands plain patterns only; extend it", l)
		}
		rules = append(rules, strings.Trim(path.Clean(l), "/"))
	}
	return rules
}

// excluded tells whether the context path p (slash-separated, relative) or
// one of its parents matches a pattern, as Docker's matching does.
func (r ignoreRules) excluded(p string) bool {
	for p != "." && p != "" {
		for _, pat := range r {
			if ok, _ := path.Match(pat, p); ok {
				return true
			}
		}
		p = path.Dir(p)
	}
	return false
}

// copyContext copies the repository into dir as Docker sends it as the
// build context, leaving out what .dockerignore excludes.
func copyContext(t *testing.T, rules ignoreRules, dir string) {
	t.Helper()
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repoRoot, p)
		if err != nil || rel == "." {
			return err
		}
		if rules.excluded(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		return copyEntry(p, d, filepath.Join(dir, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyEntry(src string, d fs.DirEntry, dst string) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	if d.IsDir() {
		return os.MkdirAll(dst, 0o755)
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	return copyFile(src, dst, info.Mode().Perm())
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// imageLayout is the final image's file system, laid out in a directory,
// with the owner COPY gave each path it created.
type imageLayout struct {
	root  string
	owner map[string]string // image path → "uid:gid"
}

func (l imageLayout) path(imagePath string) string {
	return filepath.Join(l.root, filepath.FromSlash(imagePath))
}

// dockerCopy does what COPY src dest does: a directory's contents go into
// dest, a file goes to dest (or into it when dest ends in /). Every path it
// creates is recorded with owner.
func (l imageLayout) dockerCopy(src, dest, owner string) error {
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		if strings.HasSuffix(dest, "/") {
			dest = path.Join(dest, filepath.Base(src))
		}
		l.owner[path.Clean(dest)] = owner
		return copyFile(src, l.path(dest), info.Mode().Perm())
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := path.Join(dest, filepath.ToSlash(rel))
		if rel != "." {
			l.owner[target] = owner
		}
		return copyEntry(p, d, l.path(target))
	})
}

// TestDockerfile checks, without a container engine, that the image builds
// its binary for the image's platform, that everything it copies exists in the
// build context, that its user owns the state volume, and that the default
// command and `--demo` pass --config.check against the files in the image.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	stages := parseDockerfile(t, dockerfile)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages; want a build stage and the image", len(stages))
	}
	final := stages[len(stages)-1]
	build := map[string]stage{}
	for _, s := range stages[:len(stages)-1] {
		build[s.name] = s
	}
	rules := readDockerignore(t)

	// Built for the image's platform, on the build machine's.
	for _, s := range build {
		if s.from.flags["platform"] != "$BUILDPLATFORM" {
			t.Errorf("Dockerfile:%d: build stage %q: want FROM --platform=$BUILDPLATFORM (cross-compile, no emulation)", s.from.line, s.name)
		}
		builds := false
		for _, run := range s.all("RUN") {
			if strings.Contains(run.raw, "GOOS=$TARGETOS") && strings.Contains(run.raw, "GOARCH=$TARGETARCH") {
				builds = true
			}
		}
		if !builds {
			t.Errorf("build stage %q: no RUN builds with GOOS=$TARGETOS GOARCH=$TARGETARCH", s.name)
		}
	}
	if runs := final.all("RUN"); len(runs) > 0 {
		t.Errorf("Dockerfile:%d: RUN in the image stage needs emulation for other platforms; prepare files in the build stage", runs[0].line)
	}

	// Every COPY from the build context names files that exist and that
	// .dockerignore lets through.
	for _, s := range stages {
		for _, c := range s.all("COPY") {
			if _, ok := c.flags["from"]; ok {
				continue
			}
			if len(c.args) < 2 {
				t.Errorf("Dockerfile:%d: COPY without source or destination", c.line)
				continue
			}
			for _, src := range c.args[:len(c.args)-1] {
				clean := path.Clean(src)
				if _, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(clean))); err != nil {
					t.Errorf("Dockerfile:%d: COPY %s: %v", c.line, src, err)
				}
				if clean != "." && rules.excluded(clean) {
					t.Errorf("Dockerfile:%d: COPY %s: excluded by .dockerignore", c.line, src)
				}
			}
		}
	}
	if t.Failed() {
		return
	}

	// Run the build stage's RUN instructions on a copy of the build context,
	// for this machine's platform: the binary the image gets, made the way the
	// image makes it (from the VERSION file, without git).
	tmp := t.TempDir()
	ctxDir := filepath.Join(tmp, "context")
	copyContext(t, rules, ctxDir)
	for _, s := range build {
		env := append(os.Environ(), "TARGETOS="+runtime.GOOS, "TARGETARCH="+runtime.GOARCH)
		for _, a := range s.all("ARG") {
			for _, kv := range a.args {
				if k, v, ok := strings.Cut(kv, "="); ok {
					env = append(env, k+"="+strings.Trim(v, `"`))
				}
			}
		}
		for _, run := range s.all("RUN") {
			script := strings.ReplaceAll(run.raw, buildOutput, filepath.Join(tmp, "out")+"/")
			cmd := exec.Command("sh", "-c", script)
			cmd.Dir, cmd.Env = ctxDir, env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("Dockerfile:%d: RUN %s: %v\n%s", run.line, run.raw, err, out)
			}
		}
	}

	// Lay out the image's files as its COPY instructions place them.
	img := imageLayout{root: filepath.Join(tmp, "image"), owner: map[string]string{}}
	for _, c := range final.all("COPY") {
		owner := c.flags["chown"]
		if owner == "" {
			owner = "0:0"
		}
		srcRoot := ctxDir
		if from, ok := c.flags["from"]; ok {
			if _, ok := build[from]; !ok {
				t.Fatalf("Dockerfile:%d: COPY --from=%s: no such build stage", c.line, from)
			}
			srcRoot = tmp
		}
		dest := c.args[len(c.args)-1]
		for _, src := range c.args[:len(c.args)-1] {
			if srcRoot == tmp && !strings.HasPrefix(src, buildOutput) {
				t.Fatalf("Dockerfile:%d: COPY --from %s: outside %s, which this test maps", c.line, src, buildOutput)
			}
			if err := img.dockerCopy(filepath.Join(srcRoot, filepath.FromSlash(src)), dest, owner); err != nil {
				t.Fatalf("Dockerfile:%d: COPY %s %s: %v", c.line, src, dest, err)
			}
		}
	}

	// The user is not root and owns the state volume.
	user, ok := final.last("USER")
	if !ok || len(user.args) != 1 {
		t.Fatal("Dockerfile: no USER in the image stage; the exporter must not run as root")
	}
	uid, _, _ := strings.Cut(user.args[0], ":")
	if uid == "0" || uid == "root" {
		t.Fatalf("Dockerfile:%d: USER %s is root", user.line, user.args[0])
	}
	if strings.Trim(uid, "0123456789") != "" {
		t.Errorf("Dockerfile:%d: USER %s: use a numeric uid, so that Kubernetes' runAsNonRoot can verify it", user.line, user.args[0])
	}
	volume, ok := final.last("VOLUME")
	if !ok || len(volume.args) == 0 {
		t.Fatal("Dockerfile: no VOLUME for the trigger's state")
	}
	for _, v := range volume.args {
		v = path.Clean(v)
		if fi, err := os.Stat(img.path(v)); err != nil || !fi.IsDir() {
			t.Errorf("Dockerfile:%d: VOLUME %s: not a directory the image creates (%v)", volume.line, v, err)
			continue
		}
		owner, _, _ := strings.Cut(img.owner[v], ":")
		if owner != uid {
			t.Errorf("Dockerfile:%d: VOLUME %s is owned by uid %q, but the image runs as %q: the exporter cannot write its state", volume.line, v, owner, uid)
		}
	}
	if expose, ok := final.last("EXPOSE"); !ok || !slices.Contains(expose.args, "9852") {
		t.Error("Dockerfile: want EXPOSE 9852, the exporter's default port")
	}

	// The default command, and --demo, pass --config.check in the image.
	entry, ok := final.last("ENTRYPOINT")
	if !ok || len(entry.args) == 0 {
		t.Fatal("Dockerfile: no ENTRYPOINT")
	}
	bin := img.path(entry.args[0])
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("Dockerfile:%d: ENTRYPOINT %s is not in the image: %v", entry.line, entry.args[0], err)
	}
	// The version comes from the VERSION file even without git.
	wantVersion, err := os.ReadFile(filepath.Join(repoRoot, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err != nil || !strings.Contains(string(out), "version "+strings.TrimSpace(string(wantVersion))+" ") {
		t.Errorf("the image's binary --version: %v\n%s\nwant version %s", err, out, bytes.TrimSpace(wantVersion))
	}

	var cmdArgs []string
	if c, ok := final.last("CMD"); ok {
		cmdArgs = c.args
	}
	for _, args := range [][]string{cmdArgs, {"--demo"}} {
		argv := append(slices.Clone(entry.args[1:]), args...)
		for i, a := range argv {
			if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(v, "/") {
				argv[i] = k + "=" + img.path(v)
			}
		}
		argv = append(argv, "--config.check")
		out, err := exec.Command(bin, argv...).CombinedOutput()
		if err != nil {
			t.Errorf("docker run IMAGE %s --config.check: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// k8sObject is one Kubernetes manifest, decoded generically and typed where
// the test looks.
type k8sObject struct {
	file string
	raw  map[string]any
	node yaml.Node
}

func (o k8sObject) kind() string { s, _ := o.raw["kind"].(string); return s }

func (o k8sObject) name() string {
	m, _ := o.raw["metadata"].(map[string]any)
	s, _ := m["name"].(string)
	return s
}

func (o k8sObject) decode(t *testing.T, v any) {
	t.Helper()
	if err := o.node.Decode(v); err != nil {
		t.Fatalf("%s: %s %s: %v", o.file, o.kind(), o.name(), err)
	}
}

func loadKubernetes(t *testing.T) (files []string, objs []k8sObject) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(kubernetesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", kubernetesDir, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: YAML: %v", f, err)
			}
			o := k8sObject{file: filepath.Base(f), node: n}
			if err := n.Decode(&o.raw); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.raw["apiVersion"] == nil || o.kind() == "" {
				t.Errorf("%s: a document without apiVersion or kind", f)
				continue
			}
			if o.kind() != "Kustomization" && o.name() == "" {
				t.Errorf("%s: %s without metadata.name", f, o.kind())
			}
			objs = append(objs, o)
		}
	}
	return files, objs
}

// Kubernetes types, as far as the test reads them.
type (
	k8sMeta struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	}
	k8sDeployment struct {
		Spec struct {
			Replicas *int `yaml:"replicas"`
			Strategy struct {
				Type string `yaml:"type"`
			} `yaml:"strategy"`
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Template struct {
				Metadata k8sMeta `yaml:"metadata"`
				Spec     struct {
					SecurityContext struct {
						RunAsNonRoot bool `yaml:"runAsNonRoot"`
						RunAsUser    int  `yaml:"runAsUser"`
					} `yaml:"securityContext"`
					Containers []struct {
						Args  []string `yaml:"args"`
						Ports []struct {
							Name          string `yaml:"name"`
							ContainerPort int    `yaml:"containerPort"`
						} `yaml:"ports"`
						VolumeMounts []struct {
							Name      string `yaml:"name"`
							MountPath string `yaml:"mountPath"`
						} `yaml:"volumeMounts"`
					} `yaml:"containers"`
					Volumes []struct {
						Name      string `yaml:"name"`
						Projected *struct {
							Sources []struct {
								ConfigMap *k8sRef `yaml:"configMap"`
								Secret    *k8sRef `yaml:"secret"`
							} `yaml:"sources"`
						} `yaml:"projected"`
						PersistentVolumeClaim *struct {
							ClaimName string `yaml:"claimName"`
						} `yaml:"persistentVolumeClaim"`
						EmptyDir any `yaml:"emptyDir"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	k8sRef struct {
		Name  string `yaml:"name"`
		Items []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	}
	k8sService struct {
		Metadata k8sMeta `yaml:"metadata"`
		Spec     struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				Name string `yaml:"name"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	k8sServiceMonitor struct {
		Spec struct {
			JobLabel string `yaml:"jobLabel"`
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Endpoints []struct {
				Port string `yaml:"port"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
)

// TestKubernetesManifests checks the manifests of examples/kubernetes
// against each other and against the exporter: the objects they refer to
// exist, the config with its mounted secrets passes --config.check, the
// state lives on the claim, and the PrometheusRule holds the shipped rules.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	files, objs := loadKubernetes(t)
	byKind := map[string][]k8sObject{}
	for _, o := range objs {
		byKind[o.kind()] = append(byKind[o.kind()], o)
	}
	one := func(kind string) k8sObject {
		t.Helper()
		if len(byKind[kind]) != 1 {
			t.Fatalf("examples/kubernetes: %d %s objects; want 1", len(byKind[kind]), kind)
		}
		return byKind[kind][0]
	}

	// kustomization.yaml lists every manifest.
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	one("Kustomization").decode(t, &kust)
	for _, f := range files {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && !slices.Contains(kust.Resources, base) {
			t.Errorf("kustomization.yaml: resources do not list %s", base)
		}
	}
	for _, r := range kust.Resources {
		if _, err := os.Stat(filepath.Join(kubernetesDir, r)); err != nil {
			t.Errorf("kustomization.yaml: %v", err)
		}
	}

	var dep k8sDeployment
	one("Deployment").decode(t, &dep)
	ds := dep.Spec
	if ds.Replicas == nil || *ds.Replicas != 1 {
		t.Error("Deployment: want replicas: 1; the trigger's state file takes no lock")
	}
	if ds.Strategy.Type != "Recreate" {
		t.Errorf("Deployment: strategy %q; want Recreate, so that two pods never share the state file", ds.Strategy.Type)
	}
	if !reflect.DeepEqual(ds.Selector.MatchLabels, pick(ds.Template.Metadata.Labels, ds.Selector.MatchLabels)) || len(ds.Selector.MatchLabels) == 0 {
		t.Error("Deployment: selector does not match the pod template's labels")
	}
	if !ds.Template.Spec.SecurityContext.RunAsNonRoot || ds.Template.Spec.SecurityContext.RunAsUser == 0 {
		t.Error("Deployment: want runAsNonRoot with a non-zero runAsUser")
	}
	if len(ds.Template.Spec.Containers) != 1 {
		t.Fatalf("Deployment: %d containers; want 1", len(ds.Template.Spec.Containers))
	}
	ctr := ds.Template.Spec.Containers[0]

	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	cmObj := one("ConfigMap")
	cmObj.decode(t, &cm)
	var secret struct {
		StringData map[string]string `yaml:"stringData"`
	}
	secObj := one("Secret")
	secObj.decode(t, &secret)
	pvc := one("PersistentVolumeClaim")

	// Lay out the volumes as the kubelet mounts them.
	root := t.TempDir()
	mountOf := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		mountOf[m.Name] = m.MountPath
	}
	var statePath string
	for _, v := range ds.Template.Spec.Volumes {
		mount, ok := mountOf[v.Name]
		if !ok {
			t.Errorf("Deployment: volume %s is not mounted", v.Name)
			continue
		}
		delete(mountOf, v.Name)
		dir := filepath.Join(root, filepath.FromSlash(mount))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				switch {
				case src.ConfigMap != nil:
					if src.ConfigMap.Name != cmObj.name() {
						t.Errorf("Deployment: volume %s: no ConfigMap %q", v.Name, src.ConfigMap.Name)
					}
					writeProjected(t, dir, cm.Data, src.ConfigMap)
				case src.Secret != nil:
					if src.Secret.Name != secObj.name() {
						t.Errorf("Deployment: volume %s: no Secret %q", v.Name, src.Secret.Name)
					}
					writeProjected(t, dir, secret.StringData, src.Secret)
				}
			}
		case v.PersistentVolumeClaim != nil:
			if v.PersistentVolumeClaim.ClaimName != pvc.name() {
				t.Errorf("Deployment: volume %s: no PersistentVolumeClaim %q", v.Name, v.PersistentVolumeClaim.ClaimName)
			}
			statePath = mount
		}
	}
	for name := range mountOf {
		t.Errorf("Deployment: volumeMount %s names no volume", name)
	}
	if statePath == "" {
		t.Fatal("Deployment: no volume from the PersistentVolumeClaim for the trigger's state")
	}

	// The config the container gets passes --config.check, and keeps the
	// trigger's state and audit log on the claim.
	args := slices.Clone(ctr.Args)
	var configFile string
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			configFile = filepath.Join(root, filepath.FromSlash(v))
			args[i] = "--config.file=" + configFile
		}
	}
	if configFile == "" {
		t.Fatal("Deployment: no --config.file argument")
	}
	out, err := exec.Command(proctest.BuildExporter(t), append(args, "--config.check")...).CombinedOutput()
	if err != nil {
		t.Errorf("Deployment's config: --config.check: %v\n%s", err, out)
	}
	var cfg struct {
		Trigger map[string]any `yaml:"trigger"`
	}
	b, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"state_file", "audit_log"} {
		p, _ := cfg.Trigger[key].(string)
		if !strings.HasPrefix(p, statePath+"/") {
			t.Errorf("ConfigMap: trigger.%s = %q; want it on the claim mounted at %s", key, p, statePath)
		}
	}

	// Service → pods, ServiceMonitor → Service, and the job label the
	// shipped rules expect.
	var svc k8sService
	one("Service").decode(t, &svc)
	if len(svc.Spec.Selector) == 0 || !reflect.DeepEqual(svc.Spec.Selector, pick(ds.Template.Metadata.Labels, svc.Spec.Selector)) {
		t.Error("Service: selector does not select the Deployment's pods")
	}
	var sm k8sServiceMonitor
	one("ServiceMonitor").decode(t, &sm)
	if len(sm.Spec.Selector.MatchLabels) == 0 || !reflect.DeepEqual(sm.Spec.Selector.MatchLabels, pick(svc.Metadata.Labels, sm.Spec.Selector.MatchLabels)) {
		t.Error("ServiceMonitor: selector does not select the Service")
	}
	for _, ep := range sm.Spec.Endpoints {
		if !slices.ContainsFunc(svc.Spec.Ports, func(p struct {
			Name string `yaml:"name"`
		}) bool {
			return p.Name == ep.Port
		}) {
			t.Errorf("ServiceMonitor: endpoint port %q is not a port of the Service", ep.Port)
		}
	}
	if job := svc.Metadata.Labels[sm.Spec.JobLabel]; job != scrapeJob(t) {
		t.Errorf("ServiceMonitor: job label from Service label %q is %q; the shipped rules expect job=%q (examples/prometheus.yml)", sm.Spec.JobLabel, job, scrapeJob(t))
	}

	// The PrometheusRule holds exactly the shipped rules.
	var pr struct {
		Spec any `yaml:"spec"`
	}
	one("PrometheusRule").decode(t, &pr)
	var shipped any
	b, err = os.ReadFile(exampleRules)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &shipped); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pr.Spec, shipped) {
		t.Errorf("%s: spec differs from %s; run make kubernetes-rules", prometheusRules, exampleRules)
	}
}

// pick returns the entries of m whose keys are in want.
func pick(m, want map[string]string) map[string]string {
	out := map[string]string{}
	for k := range want {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

// writeProjected writes the keys of a ConfigMap or Secret source into dir:
// all keys under their names, or the listed items under their paths.
func writeProjected(t *testing.T, dir string, data map[string]string, ref *k8sRef) {
	t.Helper()
	files := map[string]string{}
	if len(ref.Items) == 0 {
		for k := range data {
			files[k] = k
		}
	}
	for _, it := range ref.Items {
		if _, ok := data[it.Key]; !ok {
			t.Errorf("%s: item key %q is not in it", ref.Name, it.Key)
		}
		files[it.Key] = it.Path
	}
	for key, p := range files {
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte(data[key]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// scrapeJob is the job name examples/prometheus.yml scrapes the exporter
// under, which the shipped rules select.
func scrapeJob(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(examplePromCfg)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				if strings.HasSuffix(target, ":9852") {
					return sc.JobName
				}
			}
		}
	}
	t.Fatalf("%s: no job scrapes port 9852", examplePromCfg)
	return ""
}
