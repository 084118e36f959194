# /etc/profile.d/spuff.sh: the shed's credential endpoints for login shells.
# No credential is here: these name sockets and a URL served by spuff-guest,
# which asks the developer's computer for every signature and token.
export SSH_AUTH_SOCK=/run/spuff/ssh-agent.sock
export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:499/credentials
export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/run/spuff/aws-token
export SPUFF_GUEST_SOCK=/run/spuff/guest.sock
# Older SDKs and CLIs (Debian 12's boto3, AWS CLI v2.9) read only the token
# itself; spuff-guest keeps the same token across its restarts until reboot,
# so the value exported here stays valid for this login.
if [ -r /run/spuff/aws-token ]; then
	AWS_CONTAINER_AUTHORIZATION_TOKEN=$(cat /run/spuff/aws-token)
	export AWS_CONTAINER_AUTHORIZATION_TOKEN
fi
