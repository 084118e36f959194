//go:build darwin && cgo

package approval

/*
#cgo CFLAGS: -x objective-c -fobjc-arc
#cgo LDFLAGS: -framework Foundation -framework LocalAuthentication
#import <Foundation/Foundation.h>
#import <LocalAuthentication/LocalAuthentication.h>
#include <stdlib.h>
#include <string.h>

// spuff_la_can reports whether the owner can be authenticated at all; on
// failure it returns the LAError code and a malloc'd description.
static long spuff_la_can(char **why) {
	@autoreleasepool {
		LAContext *ctx = [[LAContext alloc] init];
		NSError *err = nil;
		if ([ctx canEvaluatePolicy:LAPolicyDeviceOwnerAuthentication error:&err]) {
			return 0;
		}
		*why = strdup(err ? err.localizedDescription.UTF8String : "unknown reason");
		return err ? (long)err.code : -1;
	}
}

// spuff_la_new returns a fresh context, retained for the caller: every
// prompt gets its own so a cancelled one never answers the next.
static void *spuff_la_new(void) {
	return (__bridge_retained void *)[[LAContext alloc] init];
}

static void spuff_la_free(void *c) {
	LAContext *ctx = (__bridge_transfer LAContext *)c;
	ctx = nil;
}

// spuff_la_invalidate cancels a prompt in progress: its reply arrives with
// LAErrorAppCancel and the dialog goes away.
static void spuff_la_invalidate(void *c) {
	[(__bridge LAContext *)c invalidate];
}

// spuff_la_evaluate shows the prompt and blocks until it ends. It returns 1
// for yes, 0 otherwise with the LAError code in *code.
static int spuff_la_evaluate(void *c, const char *reason, long *code) {
	@autoreleasepool {
		LAContext *ctx = (__bridge LAContext *)c;
		NSString *r = [NSString stringWithUTF8String:reason];
		if (r == nil) {
			r = @"approve a request from a shed";
		}
		dispatch_semaphore_t done = dispatch_semaphore_create(0);
		__block int ok = 0;
		__block long ecode = 0;
		[ctx evaluatePolicy:LAPolicyDeviceOwnerAuthentication
		    localizedReason:r
		              reply:^(BOOL success, NSError *err) {
			ok = success ? 1 : 0;
			ecode = err ? (long)err.code : 0;
			dispatch_semaphore_signal(done);
		}];
		dispatch_semaphore_wait(done, DISPATCH_TIME_FOREVER);
		*code = ecode;
		return ok;
	}
}
*/
import "C"

import (
	"context"
	"fmt"
	"sync"
	"unsafe"
)

// LAError codes (LocalAuthentication/LAError.h) that are a human's answer.
const (
	laAuthenticationFailed = -1 // wrong finger or password, too many times
	laUserCancel           = -2 // pressed Cancel
	laUserFallback         = -3 // chose the fallback button
)

func touchIDAvailable() error {
	var why *C.char
	code := C.spuff_la_can(&why)
	if code == 0 {
		return nil
	}
	defer C.free(unsafe.Pointer(why))
	return fmt.Errorf("%w: %s (LAError %d)", ErrTouchIDUnavailable, C.GoString(why), int(code))
}

func touchIDPrompt(ctx context.Context, reason string) (bool, error) {
	lac := C.spuff_la_new()
	creason := C.CString(reason)
	// The C side owns lac and creason until evaluate returns; mu and freed
	// keep an invalidate from racing the free.
	var (
		mu    sync.Mutex
		freed bool
	)
	type result struct {
		ok   bool
		code int
	}
	done := make(chan result, 1)
	go func() {
		var code C.long
		ok := C.spuff_la_evaluate(lac, creason, &code) == 1
		mu.Lock()
		freed = true
		C.spuff_la_free(lac)
		C.free(unsafe.Pointer(creason))
		mu.Unlock()
		done <- result{ok, int(code)}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		// The prompt timed out or someone answered elsewhere: take the
		// dialog down. Its reply (LAErrorAppCancel) frees the context.
		mu.Lock()
		if !freed {
			C.spuff_la_invalidate(lac)
		}
		mu.Unlock()
		return false, ctx.Err()
	}
	switch {
	case res.ok:
		return true, nil
	case res.code == laUserCancel, res.code == laAuthenticationFailed, res.code == laUserFallback:
		return false, nil
	default:
		// System cancel, another app took focus, no UI: no answer.
		return false, fmt.Errorf("approval: touch id gave no answer (LAError %d)", res.code)
	}
}
