package cli

import "time"

// jsonDrill is the line `drill --json` prints (docs/JSON.md).
type jsonDrill struct {
	MessageType string    `json:"message_type"`
	Hostname    string    `json:"hostname"`
	SnapshotID  string    `json:"snapshot_id"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Result      string    `json:"result"`
	Error       string    `json:"error"`
	BootMode    string    `json:"boot_mode"`
	Accel       string    `json:"accel"`
	Phases      []struct {
		Name       string `json:"name"`
		DurationNS int64  `json:"duration_ns"`
	} `json:"phases"`
	RTOSeconds float64 `json:"rto_seconds"`
	Probes     []struct {
		Probe   string  `json:"probe"`
		Result  string  `json:"result"`
		Error   string  `json:"error"`
		Seconds float64 `json:"seconds"`
	} `json:"probes"`
	Recovery map[string]any `json:"recovery"`
	Kept     string         `json:"kept"`
	Console  string         `json:"console"`
	EventID  string         `json:"event_id"`
}

// jsonDrillPast is one element of `drill --report --json`.
type jsonDrillPast struct {
	Time            time.Time `json:"time"`
	Hostname        string    `json:"hostname"`
	SnapshotID      string    `json:"snapshot_id"`
	Result          string    `json:"result"`
	Error           string    `json:"error"`
	RestoreSeconds  float64   `json:"restore_seconds"`
	BootSeconds     float64   `json:"boot_seconds"`
	ProbesSeconds   float64   `json:"probes_seconds"`
	RTOSeconds      float64   `json:"rto_seconds"`
	RTOChange       *float64  `json:"rto_change_seconds"`
	RTOChangeMedian *float64  `json:"rto_change_median_seconds"`
}
