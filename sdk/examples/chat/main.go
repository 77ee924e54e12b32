// Command avnode-chat is an example third-party role that answers work a
// satellite offloads to its beacon (seed: "a phone might act as a
// satellite … offloading AI chat inference to your beacon at home").
//
// The "model" here is a deterministic stand-in, so that the example runs
// anywhere and tests can check its answer; a real role would call an
// inference engine in Command("offload").
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/avnode/avnode/sdk"
)

func main() { sdk.Serve(&chat{}) }

type chat struct{ host sdk.Host }

// prompt is what a satellite sends: `avnode satellite offload chat '{"prompt":"hi"}'`.
type prompt struct {
	Prompt string `json:"prompt"`
}

// reply says who answered, so a satellite sees the work ran on its beacon.
type reply struct {
	Reply string `json:"reply"`
	By    string `json:"by"`
}

func (c *chat) Describe() sdk.Description {
	return sdk.Description{
		Name: "chat", Version: "0.1.0",
		Summary:      "example: answers chat prompts offloaded by satellites (a stand-in for a model)",
		Capabilities: []string{"offload"},
		Permissions:  []string{}, // it answers commands and calls nothing of the node
		ConfigSchema: `{"type":"object","additionalProperties":false}`,
	}
}

func (c *chat) ValidateConfig(raw json.RawMessage) sdk.Diagnostics {
	var none struct{}
	if err := sdk.DecodeStrict(raw, &none); err != nil {
		return sdk.Diagnostics{sdk.Errorf("config is not valid: %v", err)}
	}
	return nil
}

func (c *chat) Start(_ context.Context, raw json.RawMessage, host sdk.Host) sdk.Diagnostics {
	if diags := c.ValidateConfig(raw); diags.HasError() {
		return diags
	}
	c.host = host
	return nil
}

func (c *chat) Stop(context.Context) sdk.Diagnostics { return nil }

// Command answers "offload JSON", as the beacon calls it for a satellite.
func (c *chat) Command(_ context.Context, name string, args []string) (any, sdk.Diagnostics) {
	if name != "offload" || len(args) != 1 {
		return nil, sdk.Diagnostics{sdk.Errorf("unknown command %q %v; chat takes: offload JSON", name, args)}
	}
	var p prompt
	if err := json.Unmarshal([]byte(args[0]), &p); err != nil || p.Prompt == "" {
		return nil, sdk.Diagnostics{sdk.Errorf(`the payload must be {"prompt": "..."}`)}
	}
	c.host.CounterAdd("prompts", "prompts answered", 1)
	return reply{Reply: answer(p.Prompt), By: c.host.PeerID()}, nil
}

// answer is the stand-in model: the prompt's words, reversed.
func answer(prompt string) string {
	words := strings.Fields(prompt)
	slices.Reverse(words)
	return fmt.Sprintf("you said, backwards: %s", strings.Join(words, " "))
}

// A signature slip in a method fails the build, not the role: sdk.Serve
// finds Command by a type assertion.
var (
	_ sdk.Role      = (*chat)(nil)
	_ sdk.Commander = (*chat)(nil)
)
