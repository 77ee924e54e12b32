package sdk

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// Commander is implemented by roles that take commands from the operator:
// `avnode roles call ROLE NAME ARGS...` (and CLIs built on it, such as
// `avnode mirror add NAME`). The result is marshalled to JSON for the CLI.
// Commands may run while other commands run, but only between Start and Stop.
type Commander interface {
	Command(ctx context.Context, name string, args []string) (any, Diagnostics)
}

func (s *roleServer) Command(ctx context.Context, req *pluginpb.CommandRequest) (*pluginpb.CommandResult, error) {
	c, ok := s.role.(Commander)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this role takes no commands")
	}
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if !running {
		return nil, status.Error(codes.FailedPrecondition, "the role is not started")
	}
	var out any
	diags := s.call("Command "+req.GetName(), func() Diagnostics {
		var d Diagnostics
		out, d = c.Command(ctx, req.GetName(), req.GetArgs())
		return d
	})
	res := &pluginpb.CommandResult{Diagnostics: diags.Proto()}
	if out != nil {
		data, err := json.Marshal(out)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "command %s: result is not JSON: %v", req.GetName(), err)
		}
		res.OutputJson = data
	}
	return res, nil
}
