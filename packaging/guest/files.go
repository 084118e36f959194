// Package guest holds the files a shed needs installed (the systemd unit,
// the login environment, the docker config), embedded so that
// `spuff-guest install` carries them.
package guest

import "embed"

// Files are the installable files, by their names in this directory.
//
//go:embed spuff-guest@.service spuff.conf.environment.d profile.sh docker-config.json
var Files embed.FS
