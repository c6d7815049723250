from services.chatbot.server import main

main()
