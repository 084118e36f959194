package config

// Sample is a commented config file naming every key, for the docs and for
// `spuff doctor` to print. It loads as it is.
func Sample() string { return sample }

const sample = `# spuff host configuration: ~/.spuff/config.yaml (mode 0600).
# Every key is optional; the values below are the defaults unless marked "example".
# Secrets never go here: provider tokens come from the environment
# (DIGITALOCEAN_TOKEN, HCLOUD_TOKEN), AWS keys stay in ~/.aws, registry
# passwords in the host's docker credential store, SSH keys in ~/.ssh or your agent.

ssh:
  mode: auto                 # auto | agent-forward (host SSH_AUTH_SOCK) | local-keys (~/.ssh)
  keys: []                   # allowed key fingerprints (SHA256:…, see ssh-add -l); empty = every key
  destinations: []           # where a login may go: github.com, *.corp.example, [10.0.0.5]:2222,
                             # as your known_hosts names the server; empty = anywhere

aws:
  source_profile: default    # ~/.aws profile the host assumes roles from (static, SSO, process…)
  region: us-east-1
  default_role: arn:aws:iam::123456789012:role/dev   # example; empty = no AWS for sheds without a role
  external_id: ""            # sts:ExternalId, when the role's trust policy asks for one
  session_duration: 1h       # 15m to 12h
  cache_refresh_before: 15m  # mint new credentials this long before the old ones expire (botocore asks again at 15m)
  sts_endpoint: ""           # override: MinIO in tests, a VPC endpoint in real life
  session_tags: false        # tag sessions with shed=NAME (the role must allow sts:TagSession)

docker:
  registries: [ghcr.io]      # example allowlist; a shed gets credentials only for these
  allow_all: false

approval:
  enabled: false             # ask a human (Touch ID, tray, spuff approve) before handing out
  policy: per-session        # per-request | per-session | per-shed | none
  session_ttl: 4h            # how long a yes lasts under per-session and per-shed
  prompt_timeout: 30s        # an unanswered prompt is a no; at most 45s (a shed waits 60s in all)
  require:                   # which operation classes ask, when enabled
    ssh_login: true
    ssh_sign: ["*"]          # sshsig namespaces ("git", "file"…); "*" = all
    aws: false
    docker: false

limits:                      # per shed
  requests_per_second: 20
  burst: 50

audit:
  path: ~/.local/share/shed/extensions-audit.log   # always on; default follows XDG_DATA_HOME
  durability: batch          # batch: flushed within 100 ms of the reply; fsync: before it

provision:
  provider: qemu             # what spuff up makes: qemu (local VM) | digitalocean | hetzner
  user: dev                  # the shed's login user (sudo, key-only)
  idle_timeout: 2h           # the host stops (local) or destroys (cloud) a shed idle this long; 0 = never
  idle_notice: 10m           # warn this long before
  run: []                    # shell commands run as root at a shed's first boot, e.g. ["apt-get update -q && apt-get install -y ripgrep"]; no secrets: cloud VMs expose them

qemu:                        # local VM sheds
  image: debian-12           # base image, built or downloaded once into ~/.cache/spuff/images
  cpus: 2
  memory: 2GiB
  disk: 20GiB
  accel: auto                # auto (KVM/HVF when they work, else TCG) | kvm | hvf | tcg

digitalocean:                # token: DIGITALOCEAN_TOKEN in spuff-app's environment
  region: fra1
  size: s-2vcpu-4gb
  image: debian-12-x64
  ssh_from: []               # CIDRs the shed's firewall admits to port 22; empty = anywhere

hetzner:                     # token: HCLOUD_TOKEN in spuff-app's environment
  location: fsn1
  server_type: cx22
  image: debian-12
  ssh_from: []

sheds:                       # per-shed overrides of the sections above (example)
  my-service:
    namespaces: [ssh-agent, aws-credentials]       # what this shed may use at all; default all three
    ssh:
      keys: ["SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"]
      destinations: [github.com]
    aws:
      role: arn:aws:iam::123456789012:role/my-service
      session_policy: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::my-bucket/*"}]}'
      external_id: ""
      region: eu-west-1
    docker:
      registries: [ghcr.io, "123456789012.dkr.ecr.eu-west-1.amazonaws.com"]
      allow_all: false
    approval:
      enabled: true
      policy: per-request
      session_ttl: 1h
      prompt_timeout: 20s
      require:                                    # only the classes named here change
        ssh_login: false
        ssh_sign: [git]
        aws: true
        docker: false
    limits:
      requests_per_second: 5
      burst: 10
    provider: digitalocean                          # what spuff up my-service makes
    idle_timeout: 30m
`
