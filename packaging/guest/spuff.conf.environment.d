# /etc/environment.d/60-spuff.conf: what every login session in the shed sees.
SSH_AUTH_SOCK=/run/spuff/ssh-agent.sock
AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:499/credentials
AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/run/spuff/aws-token
SPUFF_GUEST_SOCK=/run/spuff/guest.sock
