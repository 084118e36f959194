package cli

import (
	"github.com/spuff-dev/spuff/app/control/api"
)

// listEntry is one shed of `spuff list --json`. An attached shed's fields
// are the attachment's, as they always were; a shed spuff made carries its
// row under "made", so a made shed that is not attached (stopped, failed)
// is an entry with a name and "made" only.
type listEntry struct {
	Name string `json:"name"`
	*api.Attachment
	Made *api.MadeShed `json:"made,omitempty"`
}

// mergeList joins the attachments and the made sheds by name, attachments
// first in their order, then the made sheds no attachment names. An orphan
// machine (no row) is an entry of its own even when a name matches: it is
// not the shed of that name.
func mergeList(att []api.Attachment, made []api.MadeShed) []listEntry {
	out := make([]listEntry, 0, len(att)+len(made))
	at := map[string]int{}
	for i := range att {
		at[att[i].Name] = len(out)
		out = append(out, listEntry{Name: att[i].Name, Attachment: &att[i]})
	}
	for i := range made {
		m := &made[i]
		if j, ok := at[m.Name]; ok && m.Orphan != "no row" && out[j].Made == nil {
			out[j].Made = m
			continue
		}
		out = append(out, listEntry{Name: m.Name, Made: m})
	}
	return out
}
